//! Batches prepared on a background thread, a few ahead of the training step.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::{self, JoinHandle};

use rayon::prelude::*;

use super::dataset::{Dataset, Split};
use super::error::DataError;

/// How many prepared batches may wait for the training step.
const PREFETCH: usize = 3;

/// A batch of model inputs and their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Normalised pixels, batch-major then channel, row and column (N*C*H*W).
    pub images: Vec<f32>,
    /// The class index of each image.
    pub labels: Vec<i64>,
    /// `[N, C, H, W]` of `images`.
    pub shape: [usize; 4],
}

/// The batches of one epoch from a starting batch on; dropping it stops the background work.
pub struct Loader {
    batches: Option<Receiver<Result<Batch, DataError>>>,
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
    /// An error found before any batch was made, handed out as the only item.
    failed_start: Option<DataError>,
    remaining: usize,
}

impl Loader {
    /// Starts preparing batches `start_batch..` of epoch `epoch` of `split`.
    pub(super) fn start(
        dataset: Arc<Dataset>,
        split: Split,
        epoch: usize,
        start_batch: usize,
        batch_size: usize,
    ) -> Loader {
        let stop = Arc::new(AtomicBool::new(false));
        if batch_size == 0 {
            return Loader::failed(DataError::BatchSize, stop);
        }
        let total = dataset.batches_per_epoch(split, batch_size);
        let batches = start_batch.min(total)..total;
        let remaining = batches.len();
        let (sender, receiver) = sync_channel(PREFETCH);
        let job = Job {
            dataset,
            split,
            epoch,
            batch_size,
            stop: Arc::clone(&stop),
        };
        let spawned = thread::Builder::new()
            .name(format!("thaw-{split}-loader"))
            .spawn(move || job.run(batches, sender));
        match spawned {
            Ok(worker) => Loader {
                batches: Some(receiver),
                stop,
                worker: Some(worker),
                failed_start: None,
                remaining,
            },
            Err(e) => Loader::failed(DataError::LoaderThread(e), stop),
        }
    }

    fn failed(error: DataError, stop: Arc<AtomicBool>) -> Loader {
        Loader {
            batches: None,
            stop,
            worker: None,
            failed_start: Some(error),
            remaining: 1,
        }
    }
}

impl Iterator for Loader {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(error) = self.failed_start.take() {
            self.remaining = 0;
            return Some(Err(error));
        }
        let item = self.batches.as_ref()?.recv().ok()?;
        self.remaining = self.remaining.saturating_sub(1);
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // An error ends the epoch early, so only the upper bound is certain.
        (0, Some(self.remaining))
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Closing the channel wakes a worker blocked on a full queue.
        self.batches = None;
        if let Some(worker) = self.worker.take() {
            // A panicked worker has nothing left to clean up; its batches are already gone.
            let _ = worker.join();
        }
    }
}

/// What the background thread needs to make batches.
struct Job {
    dataset: Arc<Dataset>,
    split: Split,
    epoch: usize,
    batch_size: usize,
    stop: Arc<AtomicBool>,
}

/// Why a batch was not finished.
enum Halt {
    Stopped,
    Failed(DataError),
}

impl Job {
    /// Makes `batches` in order and sends them, until done, dropped or failed.
    fn run(self, batches: std::ops::Range<usize>, sender: SyncSender<Result<Batch, DataError>>) {
        let order = self.dataset.order(self.split, self.epoch);
        for batch in batches {
            let result = match self.make(&order, batch) {
                Ok(batch) => Ok(batch),
                Err(Halt::Stopped) => return,
                Err(Halt::Failed(error)) => Err(error),
            };
            let failed = result.is_err();
            if sender.send(result).is_err() || failed {
                return;
            }
        }
    }

    /// Prepares batch `batch` of the epoch whose sample order is `order`, in parallel.
    fn make(&self, order: &[usize], batch: usize) -> Result<Batch, Halt> {
        let first = batch * self.batch_size;
        let positions = first..(first + self.batch_size).min(order.len());
        let [channels, height, width] = self.dataset.sample_shape();
        let input_len = channels * height * width;
        let mut images = vec![0.0f32; positions.len() * input_len];
        let labels = images
            .par_chunks_mut(input_len)
            .zip(positions.clone())
            .map(|(out, position)| {
                if self.stop.load(Ordering::Relaxed) {
                    return Err(Halt::Stopped);
                }
                self.dataset
                    .write_sample(self.split, self.epoch, position, order[position], out)
                    .map_err(Halt::Failed)
            })
            .collect::<Result<Vec<i64>, Halt>>()?;
        Ok(Batch {
            images,
            shape: [labels.len(), channels, height, width],
            labels,
        })
    }
}
