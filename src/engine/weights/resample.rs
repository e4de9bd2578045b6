//! A ViT's position embeddings for another image size: the grid of patch positions resampled
//! as timm's `resample_abs_pos_embed` does it (PyTorch's antialiased bicubic interpolation,
//! the class token's position kept).

/// The side of the square grid of `tokens` patch positions after `prefix` class tokens, if
/// they make one.
pub fn square_grid(tokens: usize, prefix: usize) -> Option<usize> {
    let patches = tokens.checked_sub(prefix)?;
    let side = (patches as f64).sqrt().round() as usize;
    (side > 0 && side * side == patches).then_some(side)
}

/// Resamples `[1, prefix + old * old, dim]` position embeddings to `[1, prefix + new * new,
/// dim]`: the prefix tokens as they are, the grid by separable antialiased bicubic filtering.
pub fn resample_positions(
    values: &[f32],
    prefix: usize,
    old: usize,
    new: usize,
    dim: usize,
) -> Vec<f32> {
    let (head, grid) = values.split_at(prefix * dim);
    // Rows first, then columns, as PyTorch does; each pass over `[rows, cols, dim]`.
    let rows = resample_axis(grid, old, old, dim, new, Axis::Rows);
    let both = resample_axis(&rows, new, old, dim, new, Axis::Cols);
    let mut out = head.to_vec();
    out.extend(both);
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Axis {
    Rows,
    Cols,
}

/// Resamples one axis of a `[rows, cols, dim]` grid to `to` entries.
fn resample_axis(
    grid: &[f32],
    rows: usize,
    cols: usize,
    dim: usize,
    to: usize,
    axis: Axis,
) -> Vec<f32> {
    let from = match axis {
        Axis::Rows => rows,
        Axis::Cols => cols,
    };
    let weights = filter_weights(from, to);
    let (out_rows, out_cols) = match axis {
        Axis::Rows => (to, cols),
        Axis::Cols => (rows, to),
    };
    let mut out = vec![0.0f32; out_rows * out_cols * dim];
    for r in 0..out_rows {
        for c in 0..out_cols {
            let taps = match axis {
                Axis::Rows => &weights[r],
                Axis::Cols => &weights[c],
            };
            for (j, w) in taps {
                let (sr, sc) = match axis {
                    Axis::Rows => (*j, c),
                    Axis::Cols => (r, *j),
                };
                let src = &grid[(sr * cols + sc) * dim..][..dim];
                let dst = &mut out[(r * out_cols + c) * dim..][..dim];
                for (d, s) in dst.iter_mut().zip(src) {
                    *d += (*w * *s as f64) as f32;
                }
            }
        }
    }
    out
}

/// The taps of each output entry, as PyTorch's `_compute_indices_min_size_weights_aa`
/// computes them for bicubic (Keys' cubic with a = -0.5, PIL's), normalised to sum to 1.
fn filter_weights(from: usize, to: usize) -> Vec<Vec<(usize, f64)>> {
    let scale = from as f64 / to as f64;
    let (support, invscale) = match scale >= 1.0 {
        true => (2.0 * scale, 1.0 / scale),
        false => (2.0, 1.0),
    };
    (0..to)
        .map(|i| {
            let center = scale * (i as f64 + 0.5);
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(from as i64).max(0) as usize;
            let mut taps: Vec<(usize, f64)> = (xmin..xmax)
                .map(|j| (j, cubic((j as f64 - center + 0.5) * invscale)))
                .collect();
            let total: f64 = taps.iter().map(|(_, w)| w).sum();
            if total != 0.0 {
                taps.iter_mut().for_each(|(_, w)| *w /= total);
            }
            taps
        })
        .collect()
}

fn cubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_are_found_and_the_same_size_is_the_same_values() {
        assert_eq!(square_grid(197, 1), Some(14));
        assert_eq!(square_grid(577, 1), Some(24));
        assert_eq!(square_grid(198, 1), None);
        assert_eq!(square_grid(1, 1), None);
        let values: Vec<f32> = (0..(1 + 9) * 2).map(|v| v as f32).collect();
        assert_eq!(resample_positions(&values, 1, 3, 3, 2), values);
    }

    #[test]
    fn a_constant_grid_stays_constant_both_ways() {
        for (old, new) in [(14, 24), (14, 4), (7, 7), (2, 5)] {
            let values = vec![0.25f32; (1 + old * old) * 3];
            let out = resample_positions(&values, 1, old, new, 3);
            assert_eq!(out.len(), (1 + new * new) * 3);
            assert!(
                out.iter().all(|v| (v - 0.25).abs() < 1e-6),
                "{old} -> {new}"
            );
        }
    }
}
