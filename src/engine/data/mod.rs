//! ImageFolder datasets, the demo data generator, batching and prefetch.
//!
//! Batches are plain `f32` and `i64` vectors; turning them into tensors is the trainer's job.

mod dataset;
mod demo;
mod error;
mod folder;
mod loader;
mod preprocess;
mod seed;
mod shapes;
mod source;

#[cfg(test)]
mod tests;

pub use dataset::{DataSpec, Dataset, MAX_IMAGE_SIZE, Split};
pub use demo::{DEMO_SETS, ensure_demo, write_demo};
pub use error::DataError;
pub use loader::{Batch, Loader};
pub use preprocess::prepare_image;
pub use source::DataSource;
