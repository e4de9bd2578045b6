//! Command-line verbs: the dashboard's (attach, demo, bare `thaw`), the daemon's, and those that
//! work on weights files (inspect, dry-run transfer, predict, export).

pub mod daemon;
pub mod dashboard;
pub mod export;
pub mod offline;
pub mod predict;
pub mod render;
pub mod weights;

/// The class count of a file's classification head (`fc.bias` or `head.bias`), if it has one.
pub fn head_classes(file: &crate::engine::weights::WeightsFile) -> Option<usize> {
    ["fc.bias", "head.bias"]
        .iter()
        .find_map(|name| file.tensors.get(*name))
        .and_then(|t| (t.shape.len() == 1).then_some(t.shape[0]))
}
