//! What can go wrong when reading a dataset, in words a user can act on.

use std::io;
use std::path::PathBuf;

/// An error from reading, checking or loading a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The data source string was empty.
    #[error("the data source is empty: give a folder path or one of {valid}")]
    EmptySource {
        /// The accepted demo sources, comma-separated.
        valid: String,
    },
    /// A `demo:NAME` source names no demo set.
    #[error("unknown demo data set `{name}`: accepted are {valid}")]
    UnknownDemo {
        /// The name after `demo:`.
        name: String,
        /// The accepted demo sources, comma-separated.
        valid: String,
    },
    /// `image_size` is outside what image data accepts.
    #[error("image_size = {got} is not supported: accepted are 1 to {max} pixels")]
    ImageSize {
        /// The requested size.
        got: usize,
        /// The largest accepted size.
        max: usize,
    },
    /// `in_channels` is neither 1 nor 3.
    #[error(
        "in_channels = {got} is not supported for image data: 1 (grayscale) or 3 (RGB) are accepted"
    )]
    InChannels {
        /// The requested channel count.
        got: usize,
    },
    /// `val_split` is not a fraction in `0..1`.
    #[error(
        "val_split = {got} is out of range: accepted is a fraction from 0 up to (not including) 1"
    )]
    ValSplit {
        /// The requested fraction.
        got: f64,
    },
    /// A batch size of zero was asked for.
    #[error("batch_size = 0 is not supported: a batch needs at least 1 image")]
    BatchSize,
    /// The data folder does not exist.
    #[error("data folder {path} does not exist")]
    Missing {
        /// The folder that was looked for.
        path: PathBuf,
    },
    /// The data path is a file, not a folder.
    #[error("data path {path} is not a folder: expected a folder with one subfolder per class")]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The data folder holds no class subfolders.
    #[error(
        "{path} has no class folders: expected one subfolder per class holding PNG or JPEG images \
         (optionally inside train/ and val/ folders)"
    )]
    NoClasses {
        /// The folder that was scanned.
        path: PathBuf,
    },
    /// A class folder holds no usable images.
    #[error("class folder {path} has no PNG or JPEG images")]
    EmptyClass {
        /// The class folder.
        path: PathBuf,
    },
    /// Every image of a class failed to decode.
    #[error("class folder {path} has no readable images: all of them failed to decode")]
    UnreadableClass {
        /// The class folder.
        path: PathBuf,
    },
    /// Only one class folder was found.
    #[error(
        "{path} has a single class folder ({class}): a classifier needs at least 2 classes, \
         one subfolder each"
    )]
    SingleClass {
        /// The folder that was scanned.
        path: PathBuf,
        /// The one class found.
        class: String,
    },
    /// `train/` and `val/` hold different class folders.
    #[error(
        "train/ and val/ in {path} have different class folders: only in train/: [{only_train}]; \
         only in val/: [{only_val}]"
    )]
    SplitMismatch {
        /// The folder holding `train/` and `val/`.
        path: PathBuf,
        /// Classes found only in `train/`, comma-separated.
        only_train: String,
        /// Classes found only in `val/`, comma-separated.
        only_val: String,
    },
    /// More than a few images failed to decode.
    #[error(
        "{bad} of {total} images in {path} could not be read (more than {max_percent}% allowed): {examples}"
    )]
    TooManyUnreadable {
        /// The data folder.
        path: PathBuf,
        /// How many images failed.
        bad: usize,
        /// How many images there are.
        total: usize,
        /// The largest share that is dropped with a warning instead.
        max_percent: usize,
        /// Some of the failing files with their reasons.
        examples: String,
    },
    /// An image that passed the header check failed to decode while loading.
    #[error("could not decode image {path}: {reason}")]
    Decode {
        /// The image file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// A file or folder could not be read or written.
    #[error("{action} {path}: {error}")]
    Io {
        /// What was being done, e.g. "could not read folder".
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The underlying error: said in the message, so not a `source` that a `{:#}` would
        /// say again.
        error: io::Error,
    },
    /// The background loader thread could not be started.
    #[error("could not start the data loader thread: {0}")]
    LoaderThread(io::Error),
}

impl DataError {
    /// Wraps an I/O error with what was being done and where.
    pub(super) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        DataError::Io {
            action,
            path: path.into(),
            error: source,
        }
    }
}

/// Joins a list of items for a message, naming at most `max` and counting the rest.
pub(super) fn list_some(items: &[String], max: usize) -> String {
    let mut text = items
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > max {
        text.push_str(&format!(" and {} more", items.len() - max));
    }
    text
}
