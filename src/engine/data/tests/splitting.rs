//! How folders become classes and train/val splits.

use std::collections::HashSet;
use std::fs;

use super::super::{DataError, DataSource, Dataset, Split};
use super::{class_folder, solid_png, spec_for};

#[test]
fn classes_are_sorted_folder_names() {
    let dir = tempfile::tempdir().expect("temp dir");
    class_folder(dir.path(), "zebra", 3);
    class_folder(dir.path(), "ant", 3);
    let data = Dataset::open(&spec_for(dir.path()), dir.path()).expect("opens");
    assert_eq!(data.classes, ["ant", "zebra"]);
    assert!(data.warnings.is_empty(), "{:?}", data.warnings);
}

#[test]
fn split_is_deterministic_disjoint_and_complete() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut all = class_folder(dir.path(), "a", 10);
    all.extend(class_folder(dir.path(), "b", 10));
    let mut spec = spec_for(dir.path());
    spec.val_split = 0.3;
    let first = Dataset::open(&spec, dir.path()).expect("opens");
    let again = Dataset::open(&spec, dir.path()).expect("opens");
    assert_eq!(first.paths(Split::Train), again.paths(Split::Train));
    assert_eq!(first.paths(Split::Val), again.paths(Split::Val));
    assert_eq!(first.len(Split::Val), 6);
    assert_eq!(first.len(Split::Train), 14);

    let train: HashSet<_> = first.paths(Split::Train).into_iter().collect();
    let val: HashSet<_> = first.paths(Split::Val).into_iter().collect();
    assert!(train.is_disjoint(&val));
    assert_eq!(&train | &val, all.into_iter().collect());

    spec.seed = 8;
    let reseeded = Dataset::open(&spec, dir.path()).expect("opens");
    assert_ne!(first.paths(Split::Val), reseeded.paths(Split::Val));
}

#[test]
fn every_class_gets_a_validation_image() {
    let dir = tempfile::tempdir().expect("temp dir");
    class_folder(dir.path(), "a", 5);
    class_folder(dir.path(), "b", 5);
    let mut spec = spec_for(dir.path());
    spec.val_split = 0.01;
    let data = Dataset::open(&spec, dir.path()).expect("opens");
    assert_eq!(data.len(Split::Val), 2);
    assert_eq!(data.len(Split::Train), 8);

    spec.val_split = 0.0;
    let data = Dataset::open(&spec, dir.path()).expect("opens");
    assert_eq!(data.len(Split::Val), 0);
    assert_eq!(data.len(Split::Train), 10);
}

#[test]
fn train_and_val_folders_are_used_as_the_split() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (train, val) = (dir.path().join("train"), dir.path().join("val"));
    for class in ["cat", "dog"] {
        class_folder(&train, class, 4);
        class_folder(&val, class, 2);
    }
    let data = Dataset::open(&spec_for(dir.path()), dir.path()).expect("opens");
    assert_eq!(data.classes, ["cat", "dog"]);
    assert_eq!(data.len(Split::Train), 8);
    assert_eq!(data.len(Split::Val), 4);
    assert!(data.paths(Split::Val).iter().all(|p| p.starts_with(&val)));
}

#[test]
fn train_and_val_folders_must_hold_the_same_classes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (train, val) = (dir.path().join("train"), dir.path().join("val"));
    for class in ["cat", "dog"] {
        class_folder(&train, class, 2);
    }
    for class in ["cat", "eel"] {
        class_folder(&val, class, 2);
    }
    let err = Dataset::open(&spec_for(dir.path()), dir.path()).expect_err("mismatch");
    assert!(matches!(err, DataError::SplitMismatch { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "train/ and val/ in {} have different class folders: only in train/: [dog]; \
             only in val/: [eel]",
            dir.path().display()
        )
    );
}

#[test]
fn image_extensions_are_matched_in_any_case_and_nested_folders_are_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    solid_png(&dir.path().join("a/ONE.PNG"), [1, 2, 3]);
    solid_png(&dir.path().join("a/nested/two.png"), [1, 2, 3]);
    solid_png(&dir.path().join("b/three.png"), [1, 2, 3]);
    image::RgbImage::new(4, 4)
        .save(dir.path().join("b/four.JPeG"))
        .expect("jpeg written");
    fs::write(dir.path().join("a/.DS_Store"), b"finder").expect("hidden file");
    let mut spec = spec_for(dir.path());
    spec.val_split = 0.0;
    let data = Dataset::open(&spec, dir.path()).expect("opens");
    assert_eq!(data.len(Split::Train), 4);
    assert!(data.warnings.is_empty(), "{:?}", data.warnings);
}

#[test]
fn demo_sources_are_generated_and_opened() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = super::super::DataSpec {
        source: DataSource::parse("demo:shapes-small").expect("valid"),
        ..spec_for(dir.path())
    };
    let data = Dataset::open(&spec, dir.path()).expect("opens");
    assert_eq!(
        data.classes,
        ["arrow", "crescent", "ellipse", "hexagon", "plus"]
    );
    assert_eq!(data.len(Split::Train) + data.len(Split::Val), 200);
    assert_eq!(data.len(Split::Val), 50);
}

#[test]
fn sources_parse_and_print_back() {
    let demo = DataSource::parse("demo:shapes").expect("valid");
    assert_eq!(demo, DataSource::Demo("shapes".into()));
    assert_eq!(demo.to_string(), "demo:shapes");
    let folder = DataSource::parse("/data/birds").expect("valid");
    assert_eq!(folder, DataSource::Folder("/data/birds".into()));
    let err = DataSource::parse("demo:cifar").expect_err("unknown");
    assert_eq!(
        err.to_string(),
        "unknown demo data set `cifar`: accepted are demo:shapes, demo:shapes-small"
    );
    let err = DataSource::parse(" ").expect_err("empty");
    assert_eq!(
        err.to_string(),
        "the data source is empty: give a folder path or one of demo:shapes, demo:shapes-small"
    );
}
