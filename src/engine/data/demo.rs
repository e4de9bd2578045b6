//! The built-in demo data: a pretraining set and a smaller fine-tuning set of drawn shapes.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};
use rayon::prelude::*;

use super::error::DataError;
use super::seed::{Stream, rng_for};
use super::shapes::{self, SIDE, Shape};
use super::source::unknown_demo;

/// The names of the demo sets, as used in `demo:NAME`.
pub const DEMO_SETS: &[&str] = &["shapes", "shapes-small"];

/// One demo set: which classes, how many images of each, and the seed they are drawn from.
struct DemoSet {
    name: &'static str,
    classes: &'static [Shape],
    per_class: usize,
    seed: u64,
}

/// The sets behind [`DEMO_SETS`]: ten classes to pretrain on, five others to fine-tune on.
const SETS: [DemoSet; 2] = [
    DemoSet {
        name: "shapes",
        classes: &[
            Shape::Circle,
            Shape::Square,
            Shape::Triangle,
            Shape::Cross,
            Shape::Ring,
            Shape::Diamond,
            Shape::Star,
            Shape::Stripes,
            Shape::Checker,
            Shape::Dots,
        ],
        per_class: 120,
        seed: 0x5eed_0001,
    },
    DemoSet {
        name: "shapes-small",
        classes: &[
            Shape::Ellipse,
            Shape::Hexagon,
            Shape::Plus,
            Shape::Crescent,
            Shape::Arrow,
        ],
        per_class: 40,
        seed: 0x5eed_0002,
    },
];

/// Writes every demo set under `dir` as an ImageFolder, replacing any that are there.
pub fn write_demo(dir: &Path) -> Result<(), DataError> {
    if dir.exists() && !dir.is_dir() {
        return Err(DataError::io(
            "cannot write the demo sets into",
            dir,
            io::Error::other("it is a file, not a folder"),
        ));
    }
    for set in &SETS {
        write_set(dir, set, true)?;
    }
    Ok(())
}

/// Returns the folder of demo set `name` under `data_dir`, generating missing sets first.
pub fn ensure_demo(data_dir: &Path, name: &str) -> Result<PathBuf, DataError> {
    if !DEMO_SETS.contains(&name) {
        return Err(unknown_demo(name));
    }
    for set in &SETS {
        if !data_dir.join(set.name).is_dir() {
            write_set(data_dir, set, false)?;
        }
    }
    Ok(data_dir.join(name))
}

/// Draws one set into a private temporary folder, then renames it into place.
///
/// The rename is what makes a set visible, so a crash mid-way never leaves a half-written set
/// under the real name. The temporary name carries the process id so that two processes filling
/// the same data folder do not write into each other's files.
fn write_set(dir: &Path, set: &DemoSet, replace: bool) -> Result<(), DataError> {
    let target = dir.join(set.name);
    let staging = dir.join(format!("{}.tmp-{}", set.name, std::process::id()));
    if staging.exists() {
        fs::remove_dir_all(&staging)
            .map_err(|e| DataError::io("could not remove old folder", &staging, e))?;
    }
    for shape in set.classes {
        let class_dir = staging.join(shape.name());
        fs::create_dir_all(&class_dir)
            .map_err(|e| DataError::io("could not create folder", &class_dir, e))?;
    }
    let jobs: Vec<(usize, Shape, usize)> = set
        .classes
        .iter()
        .enumerate()
        .flat_map(|(c, &shape)| (0..set.per_class).map(move |i| (c, shape, i)))
        .collect();
    jobs.par_iter().try_for_each(|&(class, shape, index)| {
        let path = staging.join(shape.name()).join(image_name(index));
        let bytes = demo_png(set.seed, class, shape, index)?;
        // No fsync per file: the set is cheap to regenerate, and a file cut short by a crash
        // after the rename is caught by the decode check when the set is opened.
        fs::write(&path, bytes).map_err(|e| DataError::io("could not write image", &path, e))
    })?;
    if target.exists() {
        if !replace {
            // Another process made the set meanwhile and may be reading it: keep its copy,
            // which is identical.
            return fs::remove_dir_all(&staging)
                .map_err(|e| DataError::io("could not remove folder", &staging, e));
        }
        let old = dir.join(format!("{}.old-{}", set.name, std::process::id()));
        fs::rename(&target, &old)
            .map_err(|e| DataError::io("could not replace folder", &target, e))?;
        fs::remove_dir_all(&old).map_err(|e| DataError::io("could not remove folder", &old, e))?;
    }
    match fs::rename(&staging, &target) {
        Ok(()) => Ok(()),
        // Another process finished the same set first; its copy is identical.
        Err(_) if target.is_dir() => fs::remove_dir_all(&staging)
            .map_err(|e| DataError::io("could not remove folder", &staging, e)),
        Err(e) => Err(DataError::io("could not move into place", &staging, e)),
    }
}

/// The file name of the `index`-th image of a class.
fn image_name(index: usize) -> String {
    format!("{index:04}.png")
}

/// The PNG bytes of one demo image; the same arguments always give the same bytes.
fn demo_png(seed: u64, class: usize, shape: Shape, index: usize) -> Result<Vec<u8>, DataError> {
    let mut rng = rng_for(seed, Stream::Demo, class as u64, index as u64);
    let image = shapes::render(shape, &mut rng);
    let mut bytes = Vec::new();
    PngEncoder::new(&mut bytes)
        .write_image(image.as_raw(), SIDE, SIDE, ExtendedColorType::Rgb8)
        .map_err(|e| {
            DataError::io(
                "could not encode demo image",
                image_name(index),
                io::Error::other(e),
            )
        })?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_match_the_public_names() {
        let names: Vec<&str> = SETS.iter().map(|s| s.name).collect();
        assert_eq!(names, DEMO_SETS);
    }

    #[test]
    fn fine_tuning_classes_differ_from_pretraining_ones() {
        let [pretrain, finetune] = &SETS;
        assert_eq!(pretrain.classes.len(), 10);
        assert_eq!(finetune.classes.len(), 5);
        assert!(
            finetune
                .classes
                .iter()
                .all(|c| !pretrain.classes.contains(c))
        );
    }

    #[test]
    fn writes_the_promised_layout_with_the_same_bytes_every_time() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = ensure_demo(dir.path(), "shapes-small").expect("demo written");
        assert_eq!(path, dir.path().join("shapes-small"));
        for set in &SETS {
            for (class, shape) in set.classes.iter().enumerate() {
                let class_dir = dir.path().join(set.name).join(shape.name());
                let count = fs::read_dir(&class_dir).expect("class folder").count();
                assert_eq!(count, set.per_class, "{}", class_dir.display());
                for index in [0, 7, set.per_class - 1] {
                    let on_disk = fs::read(class_dir.join(image_name(index))).expect("image");
                    let again = demo_png(set.seed, class, *shape, index).expect("encoded");
                    assert_eq!(on_disk, again, "{} image {index}", shape.name());
                }
            }
        }
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .expect("data dir")
            .map(|e| e.expect("entry").file_name())
            .filter(|name| name.to_string_lossy().contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "staging folders left: {leftovers:?}");
    }

    #[test]
    fn images_of_one_class_differ() {
        let [pretrain, _] = &SETS;
        let a = demo_png(pretrain.seed, 0, Shape::Circle, 0).expect("encoded");
        let b = demo_png(pretrain.seed, 0, Shape::Circle, 1).expect("encoded");
        assert_ne!(a, b);
    }

    #[test]
    fn unknown_demo_names_list_the_valid_ones() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = ensure_demo(dir.path(), "mnist").expect_err("unknown set");
        assert_eq!(
            err.to_string(),
            "unknown demo data set `mnist`: accepted are demo:shapes, demo:shapes-small"
        );
    }
}
