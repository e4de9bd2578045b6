//! Turning an image file into model input: resize, crop, flip and normalise.

use std::path::Path;

use image::imageops::{self, FilterType};
use image::{ImageBuffer, ImageReader, Pixel};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// ImageNet channel means and standard deviations, which pretrained weights expect.
const RGB_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const RGB_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// The same statistics for luma, for single-channel models.
const GRAY_MEAN: f32 = 0.449;
const GRAY_STD: f32 = 0.226;

/// The sizes involved in preparing one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Geometry {
    /// The side of the model input.
    pub(super) size: usize,
    /// The side images are first resized to, 8/7 of `size`, leaving room to crop.
    pub(super) base: usize,
    /// 1 for luma, 3 for RGB.
    pub(super) channels: usize,
}

impl Geometry {
    pub(super) fn new(size: usize, channels: usize) -> Self {
        let base = (size as f64 * 8.0 / 7.0).round() as usize;
        Geometry {
            size,
            base,
            channels,
        }
    }

    /// Bytes of one resized image, as cached.
    pub(super) fn base_len(&self) -> usize {
        self.base * self.base * self.channels
    }
}

/// Where the model input is cut from the resized image, and whether it is mirrored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Crop {
    x: usize,
    y: usize,
    flip: bool,
}

impl Crop {
    /// The centre, unmirrored: what validation always sees.
    pub(super) fn centre(geometry: Geometry) -> Self {
        let offset = (geometry.base - geometry.size) / 2;
        Crop {
            x: offset,
            y: offset,
            flip: false,
        }
    }

    /// A random position and a coin-flip mirror, for training augmentation.
    pub(super) fn random(geometry: Geometry, rng: &mut ChaCha8Rng) -> Self {
        let slack = geometry.base - geometry.size;
        Crop {
            x: rng.random_range(0..=slack),
            y: rng.random_range(0..=slack),
            flip: rng.random_bool(0.5),
        }
    }
}

/// Reads only the header of an image file; cheaper than decoding, catches most broken files.
pub(super) fn check_header(path: &Path) -> Result<(), String> {
    let (width, height) = ImageReader::open(path)
        .map_err(|e| e.to_string())?
        .with_guessed_format()
        .map_err(|e| e.to_string())?
        .into_dimensions()
        .map_err(|e| e.to_string())?;
    if width == 0 || height == 0 {
        return Err(format!("the image is {width}x{height} pixels"));
    }
    Ok(())
}

/// Decodes an image and resizes it to `base` x `base` pixels, channels interleaved.
///
/// The shorter side is scaled to `base` and the longer one cut at its centre, so the aspect
/// ratio is kept.
pub(super) fn load_resized(path: &Path, geometry: Geometry) -> Result<Vec<u8>, String> {
    let image = ImageReader::open(path)
        .map_err(|e| e.to_string())?
        .with_guessed_format()
        .map_err(|e| e.to_string())?
        .decode()
        .map_err(|e| e.to_string())?;
    if image.width() == 0 || image.height() == 0 {
        return Err(format!(
            "the image is {}x{} pixels",
            image.width(),
            image.height()
        ));
    }
    Ok(match geometry.channels {
        1 => cover(&image.to_luma8(), geometry.base),
        _ => cover(&image.to_rgb8(), geometry.base),
    })
}

/// Scales `image` so it covers a `side` square, then cuts that square from its centre.
fn cover<P>(image: &ImageBuffer<P, Vec<u8>>, side: usize) -> Vec<u8>
where
    P: Pixel<Subpixel = u8> + 'static,
{
    let (width, height) = (image.width() as f64, image.height() as f64);
    let scale = side as f64 / width.min(height);
    let scaled_width = ((width * scale).round() as u32).max(side as u32);
    let scaled_height = ((height * scale).round() as u32).max(side as u32);
    let scaled = imageops::resize(image, scaled_width, scaled_height, FilterType::Triangle);
    let x = (scaled_width - side as u32) / 2;
    let y = (scaled_height - side as u32) / 2;
    imageops::crop_imm(&scaled, x, y, side as u32, side as u32)
        .to_image()
        .into_raw()
}

/// Cuts `crop` out of a resized image and writes it normalised, channels first, into `out`.
pub(super) fn normalise_into(resized: &[u8], geometry: Geometry, crop: Crop, out: &mut [f32]) {
    let (size, base, channels) = (geometry.size, geometry.base, geometry.channels);
    for channel in 0..channels {
        let (mean, std) = match channels {
            1 => (GRAY_MEAN, GRAY_STD),
            _ => (RGB_MEAN[channel], RGB_STD[channel]),
        };
        let table: Vec<f32> = (0..=255u8)
            .map(|v| (f32::from(v) / 255.0 - mean) / std)
            .collect();
        let plane = &mut out[channel * size * size..(channel + 1) * size * size];
        for (y, row) in plane.chunks_exact_mut(size).enumerate() {
            let source_row = (crop.y + y) * base;
            for (x, value) in row.iter_mut().enumerate() {
                let source_x = if crop.flip { size - 1 - x } else { x } + crop.x;
                *value = table[usize::from(resized[(source_row + source_x) * channels + channel])];
            }
        }
    }
}

/// One image as validation sees it: resized, centre-cropped and normalised, channels first
/// (`in_channels * size * size` values).
pub fn prepare_image(path: &Path, size: usize, in_channels: usize) -> Result<Vec<f32>, String> {
    let geometry = Geometry::new(size, in_channels);
    let resized = load_resized(path, geometry)?;
    let mut out = vec![0.0; in_channels * size * size];
    normalise_into(&resized, geometry, Crop::centre(geometry), &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_is_eight_sevenths_of_the_size() {
        assert_eq!(Geometry::new(224, 3).base, 256);
        assert_eq!(Geometry::new(32, 3).base, 37);
    }

    #[test]
    fn flip_mirrors_the_crop() {
        let geometry = Geometry {
            size: 2,
            base: 2,
            channels: 1,
        };
        let resized = [0u8, 255, 0, 255];
        let mut plain = [0.0; 4];
        let mut flipped = [0.0; 4];
        let centre = Crop::centre(geometry);
        normalise_into(&resized, geometry, centre, &mut plain);
        normalise_into(
            &resized,
            geometry,
            Crop {
                flip: true,
                ..centre
            },
            &mut flipped,
        );
        assert_eq!([plain[1], plain[0], plain[3], plain[2]], flipped);
    }
}
