//! A checked, split dataset and the per-sample work the loader asks of it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::seq::SliceRandom;
use rayon::prelude::*;

use super::demo::ensure_demo;
use super::error::{DataError, list_some};
use super::folder::{self, Sample};
use super::loader::Loader;
use super::preprocess::{self, Crop, Geometry};
use super::seed::{Stream, rng_for};
use super::source::DataSource;

/// Decoded images are kept in memory when they fit in this many bytes.
const CACHE_BUDGET: usize = 1 << 30;

/// The largest `image_size` accepted.
pub const MAX_IMAGE_SIZE: usize = 2048;

/// Unreadable images are dropped with a warning up to this share of all images, in percent.
const MAX_UNREADABLE_PERCENT: usize = 5;

/// How many failing files a message names before it only counts the rest.
const LISTED_FILES: usize = 10;

/// What data to train on and how to prepare it.
#[derive(Debug, Clone, PartialEq)]
pub struct DataSpec {
    /// Where the images come from.
    pub source: DataSource,
    /// The side of the square model input, in pixels.
    pub image_size: usize,
    /// 3 for RGB, 1 for grayscale.
    pub in_channels: usize,
    /// The share of each class held out for validation when the folder has no `val/`.
    pub val_split: f64,
    /// Whether training samples get a random crop and flip.
    pub augment: bool,
    /// The seed of the split, the epoch order and the augmentation.
    pub seed: u64,
}

/// The training or the validation part of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// Shuffled every epoch, augmented when asked.
    Train,
    /// In a fixed order, centre-cropped.
    Val,
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Val => "val",
        })
    }
}

/// An image dataset whose files have been found, split and checked.
#[derive(Debug)]
pub struct Dataset {
    /// Class names, in label order.
    pub classes: Vec<String>,
    /// Things the user should know that did not stop the data from loading.
    pub warnings: Vec<String>,
    train: Vec<Item>,
    val: Vec<Item>,
    geometry: Geometry,
    augment: bool,
    seed: u64,
}

/// A sample and, when the dataset fits in memory, its resized pixels.
#[derive(Debug)]
struct Item {
    sample: Sample,
    resized: Option<Box<[u8]>>,
}

impl Dataset {
    /// Finds, splits and checks the images of `spec`; demo sets are kept under `data_dir`.
    pub fn open(spec: &DataSpec, data_dir: &Path) -> Result<Dataset, DataError> {
        Dataset::open_with_budget(spec, data_dir, CACHE_BUDGET)
    }

    /// [`Dataset::open`] with a chosen cache size, so tests can take the uncached path.
    pub(super) fn open_with_budget(
        spec: &DataSpec,
        data_dir: &Path,
        cache_budget: usize,
    ) -> Result<Dataset, DataError> {
        check_spec(spec)?;
        let root = match &spec.source {
            DataSource::Demo(name) => ensure_demo(data_dir, name)?,
            DataSource::Folder(path) => path.clone(),
        };
        let scan = folder::scan(&root, spec.val_split, spec.seed)?;
        let geometry = Geometry::new(spec.image_size, spec.in_channels);
        let total = scan.train.len() + scan.val.len();
        let cache = total.saturating_mul(geometry.base_len()) <= cache_budget;
        let mut warnings = scan.warnings;
        let samples = (scan.train.into_iter().map(|s| (Split::Train, s)))
            .chain(scan.val.into_iter().map(|s| (Split::Val, s)))
            .collect();
        let checked = check_images(samples, geometry, cache);
        let bad: Vec<String> = checked
            .iter()
            .filter_map(|(_, sample, result)| {
                let reason = result.as_ref().err()?;
                Some(format!("{} ({reason})", sample.path.display()))
            })
            .collect();
        if bad.len() * 100 > total * MAX_UNREADABLE_PERCENT {
            return Err(DataError::TooManyUnreadable {
                path: root,
                bad: bad.len(),
                total,
                max_percent: MAX_UNREADABLE_PERCENT,
                examples: list_some(&bad, LISTED_FILES),
            });
        }
        if !bad.is_empty() {
            warnings.push(format!(
                "dropped {} unreadable images: {}",
                bad.len(),
                list_some(&bad, LISTED_FILES)
            ));
        }
        let (train, val) = keep_readable(checked, scan.classes.len())?;
        Ok(Dataset {
            classes: scan.classes,
            warnings,
            train,
            val,
            geometry,
            augment: spec.augment,
            seed: spec.seed,
        })
    }

    /// How many samples a split holds.
    pub fn len(&self, split: Split) -> usize {
        self.items(split).len()
    }

    /// How many batches an epoch of `split` has: training drops a last partial batch,
    /// validation keeps it.
    pub fn batches_per_epoch(&self, split: Split, batch_size: usize) -> usize {
        if batch_size == 0 {
            return 0;
        }
        match split {
            Split::Train => self.len(split) / batch_size,
            Split::Val => self.len(split).div_ceil(batch_size),
        }
    }

    /// Loads epoch `epoch` of `split` from batch `start_batch` on, prepared in the background.
    pub fn loader(
        self: &Arc<Self>,
        split: Split,
        epoch: usize,
        start_batch: usize,
        batch_size: usize,
    ) -> Loader {
        Loader::start(Arc::clone(self), split, epoch, start_batch, batch_size)
    }

    /// The model input shape of one sample: channels, height, width.
    pub(super) fn sample_shape(&self) -> [usize; 3] {
        let g = self.geometry;
        [g.channels, g.size, g.size]
    }

    /// The files of a split, in their stored order.
    #[cfg(test)]
    pub(super) fn paths(&self, split: Split) -> Vec<PathBuf> {
        self.items(split)
            .iter()
            .map(|i| i.sample.path.clone())
            .collect()
    }

    /// Whether decoded images are held in memory.
    #[cfg(test)]
    pub(super) fn is_cached(&self) -> bool {
        self.train
            .iter()
            .chain(&self.val)
            .all(|i| i.resized.is_some())
    }

    /// The sample indices of `split` in the order epoch `epoch` visits them.
    ///
    /// Depends on the seed and the epoch only, so a resumed run replays the same order.
    pub(super) fn order(&self, split: Split, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len(split)).collect();
        if split == Split::Train {
            order.shuffle(&mut rng_for(self.seed, Stream::Shuffle, epoch as u64, 0));
        }
        order
    }

    /// Writes sample `index`, seen at `position` of epoch `epoch`, as model input into `out`,
    /// and returns its label.
    pub(super) fn write_sample(
        &self,
        split: Split,
        epoch: usize,
        position: usize,
        index: usize,
        out: &mut [f32],
    ) -> Result<i64, DataError> {
        let item = &self.items(split)[index];
        let loaded;
        let resized = match &item.resized {
            Some(pixels) => pixels,
            None => {
                loaded = preprocess::load_resized(&item.sample.path, self.geometry).map_err(
                    |reason| DataError::Decode {
                        path: item.sample.path.clone(),
                        reason,
                    },
                )?;
                &loaded[..]
            }
        };
        let crop = if split == Split::Train && self.augment {
            let mut rng = rng_for(self.seed, Stream::Augment, epoch as u64, position as u64);
            Crop::random(self.geometry, &mut rng)
        } else {
            Crop::centre(self.geometry)
        };
        preprocess::normalise_into(resized, self.geometry, crop, out);
        Ok(item.sample.label as i64)
    }

    fn items(&self, split: Split) -> &[Item] {
        match split {
            Split::Train => &self.train,
            Split::Val => &self.val,
        }
    }
}

/// Rejects settings that no image data could satisfy, before touching the disk.
fn check_spec(spec: &DataSpec) -> Result<(), DataError> {
    if !(1..=MAX_IMAGE_SIZE).contains(&spec.image_size) {
        return Err(DataError::ImageSize {
            got: spec.image_size,
            max: MAX_IMAGE_SIZE,
        });
    }
    if !matches!(spec.in_channels, 1 | 3) {
        return Err(DataError::InChannels {
            got: spec.in_channels,
        });
    }
    if !(0.0..1.0).contains(&spec.val_split) {
        return Err(DataError::ValSplit {
            got: spec.val_split,
        });
    }
    Ok(())
}

/// A sample, the part it belongs to, and its resized pixels or why it could not be read.
type Checked = (Split, Sample, Result<Option<Box<[u8]>>, String>);

/// Decodes every image (or, when they would not fit in memory, reads every header) in parallel.
fn check_images(samples: Vec<(Split, Sample)>, geometry: Geometry, cache: bool) -> Vec<Checked> {
    samples
        .into_par_iter()
        .map(|(split, sample)| {
            let result = if cache {
                preprocess::load_resized(&sample.path, geometry).map(|p| Some(p.into()))
            } else {
                preprocess::check_header(&sample.path).map(|()| None)
            };
            (split, sample, result)
        })
        .collect()
}

/// Splits the readable samples into train and val, failing when a class lost all of a part.
fn keep_readable(
    checked: Vec<Checked>,
    class_count: usize,
) -> Result<(Vec<Item>, Vec<Item>), DataError> {
    let (mut train, mut val) = (Vec::new(), Vec::new());
    // Per part and class: whether any image survived, and a file that did not.
    let mut survived = vec![[false; 2]; class_count];
    let mut lost: Vec<[Option<PathBuf>; 2]> = vec![[None, None]; class_count];
    for (split, sample, result) in checked {
        let part = usize::from(split == Split::Val);
        match result {
            Ok(resized) => {
                survived[sample.label][part] = true;
                let item = Item { sample, resized };
                match split {
                    Split::Train => train.push(item),
                    Split::Val => val.push(item),
                }
            }
            Err(_) => lost[sample.label][part] = Some(sample.path),
        }
    }
    for (alive, dropped) in survived.iter().zip(lost) {
        for (alive, dropped) in alive.iter().zip(dropped) {
            if let (false, Some(file)) = (alive, dropped) {
                let folder = file.parent().map(Path::to_path_buf).unwrap_or(file);
                return Err(DataError::UnreadableClass { path: folder });
            }
        }
    }
    Ok((train, val))
}
