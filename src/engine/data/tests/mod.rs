//! Dataset-level tests on small folders built in temporary directories.

mod bad_data;
mod loading;
mod splitting;

use std::fs;
use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};

use super::{DataSource, DataSpec};

/// A spec for a folder with small inputs, so each test runs in milliseconds.
fn spec_for(root: &Path) -> DataSpec {
    DataSpec {
        source: DataSource::Folder(root.to_path_buf()),
        image_size: 8,
        in_channels: 3,
        val_split: 0.25,
        augment: true,
        seed: 7,
    }
}

/// Writes `count` distinct 12x10 PNGs into `root/class`, returning their paths.
fn class_folder(root: &Path, class: &str, count: usize) -> Vec<PathBuf> {
    let dir = root.join(class);
    fs::create_dir_all(&dir).expect("class folder");
    (0..count)
        .map(|i| {
            let path = dir.join(format!("{i:03}.png"));
            let image = RgbImage::from_fn(12, 10, |x, y| {
                Rgb([
                    (x * 20) as u8,
                    (y * 25) as u8,
                    (i * 9 + class.len() * 40) as u8,
                ])
            });
            image.save(&path).expect("png written");
            path
        })
        .collect()
}

/// Writes a single-colour PNG.
fn solid_png(path: &Path, colour: [u8; 3]) {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).expect("folder");
    }
    RgbImage::from_pixel(9, 11, Rgb(colour))
        .save(path)
        .expect("png written");
}

/// Writes a file with a PNG name and no PNG inside.
fn garbage_png(path: &Path) {
    fs::write(path, b"this is not an image").expect("file written");
}
