//! Batches: shape, normalisation, and the determinism a resumed run relies on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::{Batch, Dataset, Split};
use super::{class_folder, solid_png, spec_for};

/// A dataset of two classes of 10 images: 14 train and 6 val samples.
fn small_dataset(dir: &std::path::Path) -> Arc<Dataset> {
    class_folder(dir, "a", 10);
    class_folder(dir, "b", 10);
    let mut spec = spec_for(dir);
    spec.val_split = 0.3;
    Arc::new(Dataset::open(&spec, dir).expect("opens"))
}

fn epoch(data: &Arc<Dataset>, split: Split, epoch: usize, start: usize) -> Vec<Batch> {
    batches(data, split, epoch, start, 4)
}

fn batches(
    data: &Arc<Dataset>,
    split: Split,
    epoch: usize,
    start: usize,
    size: usize,
) -> Vec<Batch> {
    data.loader(split, epoch, start, size)
        .collect::<Result<_, _>>()
        .expect("batches")
}

#[test]
fn batches_have_the_promised_shape() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = small_dataset(dir.path());
    assert_eq!(data.batches_per_epoch(Split::Train, 4), 3);
    assert_eq!(data.batches_per_epoch(Split::Val, 4), 2);
    let train = epoch(&data, Split::Train, 0, 0);
    assert_eq!(train.len(), 3);
    for batch in &train {
        assert_eq!(batch.shape, [4, 3, 8, 8]);
        assert_eq!(batch.images.len(), 4 * 3 * 8 * 8);
        assert_eq!(batch.labels.len(), 4);
    }
    let val = epoch(&data, Split::Val, 0, 0);
    assert_eq!(val.iter().map(|b| b.shape[0]).collect::<Vec<_>>(), [4, 2]);
}

#[test]
fn same_seed_and_epoch_give_the_same_batches() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = small_dataset(dir.path());
    let first = epoch(&data, Split::Train, 3, 0);
    assert_eq!(first, epoch(&data, Split::Train, 3, 0));
    // A reopened dataset, as after a restart, replays the epoch too.
    let reopened = small_dataset(dir.path());
    assert_eq!(first, epoch(&reopened, Split::Train, 3, 0));
}

#[test]
fn a_loader_started_mid_epoch_continues_the_full_epoch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = small_dataset(dir.path());
    let full = epoch(&data, Split::Train, 2, 0);
    for start in 0..=full.len() {
        assert_eq!(epoch(&data, Split::Train, 2, start), full[start..]);
    }
    let val = epoch(&data, Split::Val, 2, 0);
    assert_eq!(epoch(&data, Split::Val, 2, 1), val[1..]);
}

#[test]
fn epochs_differ_for_training_but_not_for_validation() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = small_dataset(dir.path());
    assert_ne!(
        epoch(&data, Split::Train, 0, 0),
        epoch(&data, Split::Train, 1, 0)
    );
    assert_eq!(
        epoch(&data, Split::Val, 0, 0),
        epoch(&data, Split::Val, 5, 0)
    );
}

#[test]
fn cached_and_uncached_datasets_give_the_same_batches() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cached = small_dataset(dir.path());
    let mut spec = spec_for(dir.path());
    spec.val_split = 0.3;
    let uncached = Arc::new(Dataset::open_with_budget(&spec, dir.path(), 0).expect("opens"));
    assert!(cached.is_cached() && !uncached.is_cached());
    assert_eq!(
        epoch(&cached, Split::Train, 1, 0),
        epoch(&uncached, Split::Train, 1, 0)
    );
}

#[test]
fn constant_colours_normalise_to_imagenet_statistics() {
    let dir = tempfile::tempdir().expect("temp dir");
    solid_png(&dir.path().join("a/0.png"), [255, 0, 128]);
    solid_png(&dir.path().join("b/0.png"), [255, 0, 128]);
    let mut spec = spec_for(dir.path());
    spec.val_split = 0.0;
    let data = Arc::new(Dataset::open(&spec, dir.path()).expect("opens"));
    let batch = batches(&data, Split::Train, 0, 0, 2).remove(0);
    let plane = 8 * 8;
    let expected = [
        (1.0 - 0.485) / 0.229,
        (0.0 - 0.456) / 0.224,
        (128.0 / 255.0 - 0.406) / 0.225,
    ];
    for (i, value) in batch.images.iter().enumerate() {
        let want = expected[(i / plane) % 3];
        assert!((value - want).abs() < 1e-5, "pixel {i}: {value} != {want}");
    }

    spec.in_channels = 1;
    let gray = Arc::new(Dataset::open(&spec, dir.path()).expect("opens"));
    let batch = batches(&gray, Split::Train, 0, 0, 2).remove(0);
    assert_eq!(batch.shape, [2, 1, 8, 8]);
    let luma = image::Rgb([255u8, 0, 128]);
    let luma = f32::from(image::Pixel::to_luma(&luma).0[0]);
    let want = (luma / 255.0 - 0.449) / 0.226;
    assert!(batch.images.iter().all(|v| (v - want).abs() < 1e-5));
}

#[test]
fn dropping_a_loader_stops_it_promptly() {
    let dir = tempfile::tempdir().expect("temp dir");
    class_folder(dir.path(), "a", 200);
    class_folder(dir.path(), "b", 200);
    let mut spec = spec_for(dir.path());
    spec.image_size = 64;
    let data = Arc::new(Dataset::open_with_budget(&spec, dir.path(), 0).expect("opens"));
    let mut loader = data.loader(Split::Train, 0, 0, 8);
    assert!(loader.next().is_some());
    let started = Instant::now();
    drop(loader);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(Arc::strong_count(&data), 1, "the worker thread has let go");
}
