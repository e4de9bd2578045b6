//! The layout of `checkpoints/`: a directory `step-N/` per checkpoint, each with the model,
//! the optimizer and the training state, and a `latest` file naming the newest complete one.
//! What goes into the files is the engine's (`engine::checkpoint`); where they are is here.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::dir::{RunDir, write_atomic};

/// One checkpoint's directory.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointDir {
    pub root: PathBuf,
}

impl CheckpointDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The model's weights (burnpack).
    pub fn model(&self) -> PathBuf {
        self.root.join("model.bpk")
    }
    /// The optimizer's state (burnpack).
    pub fn optimizer(&self) -> PathBuf {
        self.root.join("optimizer.bpk")
    }
    /// Where training stands (JSON).
    pub fn state(&self) -> PathBuf {
        self.root.join("state.json")
    }
    /// Whether its three files are there.
    pub fn is_whole(&self) -> bool {
        self.state().is_file() && self.model().is_file() && self.optimizer().is_file()
    }
}

/// The name of step `step`'s checkpoint directory.
fn step_name(step: usize) -> String {
    format!("step-{step}")
}

impl RunDir {
    fn latest_file(&self) -> PathBuf {
        self.checkpoints().join("latest")
    }

    /// Where step `step`'s checkpoint goes, and the scratch directory it is written in first.
    pub fn checkpoint_at(&self, step: usize) -> (CheckpointDir, CheckpointDir) {
        let name = step_name(step);
        let root = self.checkpoints();
        (
            CheckpointDir::new(root.join(&name)),
            CheckpointDir::new(root.join(format!("{name}.tmp"))),
        )
    }

    /// The checkpoints whose state was written (the last file of one), oldest first.
    pub fn checkpoint_dirs(&self) -> Vec<(usize, CheckpointDir)> {
        let Ok(entries) = std::fs::read_dir(self.checkpoints()) else {
            return Vec::new();
        };
        let mut found: Vec<(usize, CheckpointDir)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let step = name.strip_prefix("step-")?.parse::<usize>().ok()?;
                let dir = CheckpointDir::new(e.path());
                dir.state().is_file().then_some((step, dir))
            })
            .collect();
        found.sort_by_key(|(step, _)| *step);
        found
    }

    /// The checkpoint `latest` names, if it names one.
    pub fn latest_checkpoint(&self) -> Option<CheckpointDir> {
        let name = std::fs::read_to_string(self.latest_file()).ok()?;
        Some(CheckpointDir::new(self.checkpoints().join(name.trim())))
    }

    /// Points `latest` at step `step`'s checkpoint; `None` removes the pointer.
    pub fn point_latest(&self, step: Option<usize>) -> Result<()> {
        let path = self.latest_file();
        match step {
            Some(step) => write_atomic(&path, step_name(step).as_bytes()),
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("cannot remove {}", path.display()))
                }
                _ => Ok(()),
            },
        }
    }
}

impl AsRef<Path> for CheckpointDir {
    fn as_ref(&self) -> &Path {
        &self.root
    }
}
