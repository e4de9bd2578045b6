//! Every way a folder or a spec can be wrong, and what the user is told.

use std::fs;
use std::sync::Arc;

use super::super::{DataError, Dataset, Split};
use super::{class_folder, garbage_png, spec_for};

fn open_error(spec: &super::super::DataSpec) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    Dataset::open(spec, dir.path())
        .expect_err("should be refused")
        .to_string()
}

#[test]
fn missing_folder() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nope");
    assert_eq!(
        open_error(&spec_for(&missing)),
        format!("data folder {} does not exist", missing.display())
    );
}

#[test]
fn file_instead_of_folder() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("data.zip");
    fs::write(&file, b"zip").expect("file");
    assert_eq!(
        open_error(&spec_for(&file)),
        format!(
            "data path {} is not a folder: expected a folder with one subfolder per class",
            file.display()
        )
    );
}

#[test]
fn folder_without_class_folders() {
    let dir = tempfile::tempdir().expect("temp dir");
    assert!(open_error(&spec_for(dir.path())).starts_with(&format!(
        "{} has no class folders: expected one subfolder per class",
        dir.path().display()
    )));
}

#[test]
fn empty_class_folder() {
    let dir = tempfile::tempdir().expect("temp dir");
    class_folder(dir.path(), "a", 2);
    fs::create_dir(dir.path().join("b")).expect("folder");
    fs::write(dir.path().join("b/readme.txt"), b"hi").expect("file");
    assert_eq!(
        open_error(&spec_for(dir.path())),
        format!(
            "class folder {} has no PNG or JPEG images",
            dir.path().join("b").display()
        )
    );
}

#[test]
fn single_class() {
    let dir = tempfile::tempdir().expect("temp dir");
    class_folder(dir.path(), "only", 4);
    let message = open_error(&spec_for(dir.path()));
    assert!(message.contains("single class folder (only)"), "{message}");
    assert!(message.contains("needs at least 2 classes"), "{message}");
}

#[test]
fn non_image_files_are_ignored_with_a_warning() {
    let dir = tempfile::tempdir().expect("temp dir");
    class_folder(dir.path(), "a", 3);
    class_folder(dir.path(), "b", 3);
    let notes = dir.path().join("a/notes.txt");
    fs::write(&notes, b"labels").expect("file");
    let data = Dataset::open(&spec_for(dir.path()), dir.path()).expect("opens");
    assert_eq!(
        data.warnings,
        [format!(
            "ignored 1 non-image files (only PNG and JPEG are read): {}",
            notes.display()
        )]
    );
    assert_eq!(data.len(Split::Train) + data.len(Split::Val), 6);
}

#[test]
fn a_few_corrupt_images_are_dropped_with_a_warning() {
    for budget in [usize::MAX, 0] {
        let dir = tempfile::tempdir().expect("temp dir");
        class_folder(dir.path(), "a", 30);
        class_folder(dir.path(), "b", 30);
        let broken = [dir.path().join("a/bad.png"), dir.path().join("b/bad.png")];
        broken.iter().for_each(|p| garbage_png(p));
        let data =
            Dataset::open_with_budget(&spec_for(dir.path()), dir.path(), budget).expect("opens");
        assert_eq!(data.is_cached(), budget > 0);
        assert_eq!(data.len(Split::Train) + data.len(Split::Val), 60);
        assert_eq!(data.warnings.len(), 1, "{:?}", data.warnings);
        let warning = &data.warnings[0];
        assert!(
            warning.starts_with("dropped 2 unreadable images: "),
            "{warning}"
        );
        for path in &broken {
            assert!(warning.contains(&path.display().to_string()), "{warning}");
        }
    }
}

#[test]
fn mostly_corrupt_folder_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    class_folder(dir.path(), "a", 4);
    class_folder(dir.path(), "b", 4);
    for i in 0..4 {
        garbage_png(&dir.path().join(format!("b/bad{i}.png")));
    }
    let err = Dataset::open(&spec_for(dir.path()), dir.path()).expect_err("refused");
    assert!(matches!(
        err,
        DataError::TooManyUnreadable {
            bad: 4,
            total: 12,
            ..
        }
    ));
    assert!(
        err.to_string().starts_with(&format!(
            "4 of 12 images in {} could not be read (more than 5% allowed): ",
            dir.path().display()
        )),
        "{err}"
    );
}

#[test]
fn an_image_that_breaks_after_its_header_fails_its_batch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = class_folder(dir.path(), "a", 30);
    class_folder(dir.path(), "b", 30);
    let bytes = fs::read(&files[0]).expect("png");
    fs::write(&files[0], &bytes[..bytes.len() / 2]).expect("truncated");
    let mut spec = spec_for(dir.path());
    spec.val_split = 0.0;
    let data = Arc::new(Dataset::open_with_budget(&spec, dir.path(), 0).expect("opens"));
    let results: Vec<_> = data.loader(Split::Train, 0, 0, 60).collect();
    assert_eq!(results.len(), 1);
    let message = results[0].as_ref().expect_err("decode error").to_string();
    assert!(
        message.starts_with(&format!("could not decode image {}: ", files[0].display())),
        "{message}"
    );
}

#[test]
fn settings_no_image_data_accepts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut spec = spec_for(dir.path());
    spec.in_channels = 2;
    assert_eq!(
        open_error(&spec),
        "in_channels = 2 is not supported for image data: 1 (grayscale) or 3 (RGB) are accepted"
    );
    for bad in [1.0, -0.1, f64::NAN] {
        let mut spec = spec_for(dir.path());
        spec.val_split = bad;
        assert_eq!(
            open_error(&spec),
            format!(
                "val_split = {bad} is out of range: accepted is a fraction from 0 up to \
                 (not including) 1"
            )
        );
    }
    let mut spec = spec_for(dir.path());
    spec.image_size = 0;
    assert_eq!(
        open_error(&spec),
        "image_size = 0 is not supported: accepted are 1 to 2048 pixels"
    );
}

#[test]
fn zero_batch_size_is_an_error_not_an_empty_epoch() {
    let dir = tempfile::tempdir().expect("temp dir");
    class_folder(dir.path(), "a", 2);
    class_folder(dir.path(), "b", 2);
    let data = Arc::new(Dataset::open(&spec_for(dir.path()), dir.path()).expect("opens"));
    let results: Vec<_> = data.loader(Split::Train, 0, 0, 0).collect();
    assert!(matches!(results.as_slice(), [Err(DataError::BatchSize)]));
}
