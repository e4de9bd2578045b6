//! Command-line verbs: the dashboard's (attach, demo, bare `thaw`), the daemon's, and those that
//! work on weights files (inspect, dry-run transfer, predict, export).

pub mod daemon;
pub mod dashboard;
pub mod export;
pub mod offline;
pub mod predict;
pub mod weights;

use std::path::{Path, PathBuf};

/// The class names stored beside weights that a run wrote (`classes.json` in the run
/// directory, found from `best.bpk` or a checkpoint's `model.bpk`).
pub fn class_names_near(weights: &Path) -> Option<Vec<String>> {
    let mut dir: Option<PathBuf> = weights.parent().map(Path::to_path_buf);
    for _ in 0..3 {
        let here = dir?;
        if let Ok(bytes) = std::fs::read(here.join("classes.json")) {
            return serde_json::from_slice(&bytes).ok();
        }
        dir = here.parent().map(Path::to_path_buf);
    }
    None
}

/// The class count of a file's classification head (`fc.bias` or `head.bias`), if it has one.
pub fn head_classes(file: &crate::engine::weights::WeightsFile) -> Option<usize> {
    ["fc.bias", "head.bias"]
        .iter()
        .find_map(|name| file.tensors.get(*name))
        .and_then(|t| (t.shape.len() == 1).then_some(t.shape[0]))
}
