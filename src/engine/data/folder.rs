//! Reading an ImageFolder: one subfolder per class, optionally under `train/` and `val/`.

use std::fs;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;

use super::error::{DataError, list_some};
use super::seed::{Stream, rng_for};

/// One image file and the index of its class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Sample {
    pub(super) path: PathBuf,
    pub(super) label: usize,
}

/// The classes and split of a folder, before any image is decoded.
#[derive(Debug)]
pub(super) struct Scan {
    pub(super) classes: Vec<String>,
    pub(super) train: Vec<Sample>,
    pub(super) val: Vec<Sample>,
    pub(super) warnings: Vec<String>,
}

/// How many ignored files a warning names before it only counts the rest.
const LISTED_FILES: usize = 10;

/// Scans `root` and splits it: by its `train/` and `val/` folders when it has both, else by
/// holding out `val_split` of each class, chosen by `seed`.
pub(super) fn scan(root: &Path, val_split: f64, seed: u64) -> Result<Scan, DataError> {
    if !root.exists() {
        return Err(DataError::Missing {
            path: root.to_path_buf(),
        });
    }
    if !root.is_dir() {
        return Err(DataError::NotADirectory {
            path: root.to_path_buf(),
        });
    }
    let mut ignored = Vec::new();
    let (train_dir, val_dir) = (root.join("train"), root.join("val"));
    let mut scan = if train_dir.is_dir() && val_dir.is_dir() {
        let train = read_classes(&train_dir, &mut ignored)?;
        let val = read_classes(&val_dir, &mut ignored)?;
        let names = |classes: &[ClassFiles]| -> Vec<String> {
            classes.iter().map(|c| c.name.clone()).collect()
        };
        let (train_names, val_names) = (names(&train), names(&val));
        if train_names != val_names {
            let missing_from = |a: &[String], b: &[String]| {
                let only: Vec<String> = a.iter().filter(|n| !b.contains(n)).cloned().collect();
                only.join(", ")
            };
            return Err(DataError::SplitMismatch {
                path: root.to_path_buf(),
                only_train: missing_from(&train_names, &val_names),
                only_val: missing_from(&val_names, &train_names),
            });
        }
        Scan {
            classes: train_names,
            train: samples(train),
            val: samples(val),
            warnings: Vec::new(),
        }
    } else {
        split_by_seed(read_classes(root, &mut ignored)?, val_split, seed)
    };
    if !ignored.is_empty() {
        scan.warnings.insert(
            0,
            format!(
                "ignored {} non-image files (only PNG and JPEG are read): {}",
                ignored.len(),
                list_some(&ignored, LISTED_FILES)
            ),
        );
    }
    Ok(scan)
}

/// The image files of one class folder, sorted by path.
struct ClassFiles {
    name: String,
    files: Vec<PathBuf>,
}

/// Reads the class folders of `dir`, sorted by name, noting files that are not images.
fn read_classes(dir: &Path, ignored: &mut Vec<String>) -> Result<Vec<ClassFiles>, DataError> {
    let mut class_dirs: Vec<PathBuf> = Vec::new();
    for entry in sorted_entries(dir)? {
        if entry.is_dir() {
            class_dirs.push(entry);
        } else {
            ignored.push(entry.display().to_string());
        }
    }
    let mut classes = Vec::with_capacity(class_dirs.len());
    for class_dir in class_dirs {
        let mut files = Vec::new();
        collect_images(&class_dir, &mut files, ignored)?;
        if files.is_empty() {
            return Err(DataError::EmptyClass { path: class_dir });
        }
        let name = class_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        classes.push(ClassFiles { name, files });
    }
    match classes.as_slice() {
        [] => Err(DataError::NoClasses {
            path: dir.to_path_buf(),
        }),
        [only] => Err(DataError::SingleClass {
            path: dir.to_path_buf(),
            class: only.name.clone(),
        }),
        _ => Ok(classes),
    }
}

/// Gathers the PNG and JPEG files under `dir`, nested folders included, in sorted order.
fn collect_images(
    dir: &Path,
    files: &mut Vec<PathBuf>,
    ignored: &mut Vec<String>,
) -> Result<(), DataError> {
    for entry in sorted_entries(dir)? {
        if entry.is_dir() {
            collect_images(&entry, files, ignored)?;
        } else if is_image(&entry) {
            files.push(entry);
        } else {
            ignored.push(entry.display().to_string());
        }
    }
    Ok(())
}

/// The entries of `dir` sorted by name, without hidden ones (`.DS_Store` and the like).
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let read_error = |e| DataError::io("could not read folder", dir, e);
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        if !entry.file_name().to_string_lossy().starts_with('.') {
            entries.push(entry.path());
        }
    }
    entries.sort();
    Ok(entries)
}

/// Whether a file is a PNG or JPEG by its extension, in any case.
fn is_image(path: &Path) -> bool {
    path.extension()
        .map(|ext| ext.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|ext| matches!(ext.as_str(), "png" | "jpg" | "jpeg"))
}

fn samples(classes: Vec<ClassFiles>) -> Vec<Sample> {
    classes
        .into_iter()
        .enumerate()
        .flat_map(|(label, class)| {
            class
                .files
                .into_iter()
                .map(move |path| Sample { path, label })
        })
        .collect()
}

/// Holds out `val_split` of each class for validation, at least one image when it is above 0.
///
/// Each class is shuffled by a stream of `seed` keyed by the class name, so the split of one
/// class does not change when files or classes are added elsewhere.
fn split_by_seed(classes: Vec<ClassFiles>, val_split: f64, seed: u64) -> Scan {
    let mut scan = Scan {
        classes: classes.iter().map(|c| c.name.clone()).collect(),
        train: Vec::new(),
        val: Vec::new(),
        warnings: Vec::new(),
    };
    for (label, mut class) in classes.into_iter().enumerate() {
        let count = class.files.len();
        let held_out = if val_split <= 0.0 {
            0
        } else if count < 2 {
            scan.warnings.push(format!(
                "class {} has a single image; it is used for training only",
                class.name
            ));
            0
        } else {
            ((count as f64 * val_split).round() as usize).clamp(1, count - 1)
        };
        class
            .files
            .shuffle(&mut rng_for(seed, Stream::Split, name_key(&class.name), 0));
        let train = class.files.split_off(held_out);
        scan.val
            .extend(class.files.into_iter().map(|path| Sample { path, label }));
        scan.train
            .extend(train.into_iter().map(|path| Sample { path, label }));
    }
    scan
}

/// A stable 64-bit FNV-1a hash of a class name (std's hasher may change between releases).
fn name_key(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
