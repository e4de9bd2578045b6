//! A run's directory and the name of every file in it. Nothing outside `run/` spells one.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

/// A run's directory and the files in it.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub root: PathBuf,
}

/// The weights a run writes at each new best validation loss, for runs to start from.
pub const BEST: &str = "best.bpk";
/// The run's settings, as the session file gave them.
pub const SPEC: &str = "spec.toml";

impl RunDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `spec.toml`: the run's settings (written at launch, read by its worker).
    pub fn spec(&self) -> PathBuf {
        self.root.join(SPEC)
    }
    /// `desired.json`: what the user asked for (written by the daemon).
    pub fn desired_path(&self) -> PathBuf {
        self.root.join("desired.json")
    }
    /// `state.json`: the worker's account of the run.
    pub fn state_path(&self) -> PathBuf {
        self.root.join("state.json")
    }
    /// `metrics.csv`: a row per logged interval and per validation pass.
    pub fn metrics_path(&self) -> PathBuf {
        self.root.join("metrics.csv")
    }
    /// `events.jsonl`: what happened, a JSON object a line.
    pub fn events_path(&self) -> PathBuf {
        self.root.join("events.jsonl")
    }
    /// `checkpoints/`: `step-N/` directories and the `latest` pointer.
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }
    /// `best.bpk`: the weights of the lowest validation loss.
    pub fn best(&self) -> PathBuf {
        self.root.join(BEST)
    }
    /// `nan.json`: a loss that was not finite, until a checkpoint is written past it.
    pub fn nan_path(&self) -> PathBuf {
        self.root.join("nan.json")
    }
    /// `classes.json`: the class names, in the order of the model's outputs.
    pub fn classes_path(&self) -> PathBuf {
        self.root.join("classes.json")
    }
    /// `transfer.json`: how much of each group the starting weights filled.
    pub fn transfer_path(&self) -> PathBuf {
        self.root.join("transfer.json")
    }
    /// `worker.log`: what the worker process printed.
    pub fn worker_log(&self) -> PathBuf {
        self.root.join("worker.log")
    }
    /// `worker.lock`: held by the worker training the run.
    pub fn worker_lock(&self) -> PathBuf {
        self.root.join("worker.lock")
    }
    /// `train.lock`: held (shared) by each `thaw train` that will train the run.
    pub fn train_lock(&self) -> PathBuf {
        self.root.join("train.lock")
    }
    /// `slurm.sh`: the batch script a Slurm run's jobs run.
    pub fn slurm_script(&self) -> PathBuf {
        self.root.join("slurm.sh")
    }
    /// `slurm.json`: the run's latest Slurm job.
    pub fn slurm_record(&self) -> PathBuf {
        self.root.join("slurm.json")
    }
    /// `slurm-JOB.log`: what Slurm job `job` printed.
    pub fn slurm_log(&self, job: u64) -> PathBuf {
        self.root.join(format!("slurm-{job}.log"))
    }
    /// The `--output` pattern sbatch writes a job's log to (`slurm-%j.log`).
    pub fn slurm_log_pattern(&self) -> String {
        format!("{}/slurm-%j.log", self.root.display())
    }

    /// The class names the run wrote, if it has.
    pub fn read_classes(&self) -> Option<Vec<String>> {
        let bytes = std::fs::read(self.classes_path()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Writes the class names, in the order of the model's outputs.
    pub fn write_classes(&self, classes: &[String]) -> Result<()> {
        write_atomic(&self.classes_path(), &serde_json::to_vec_pretty(classes)?)
    }

    /// The worker's log, opened to append to (created if it is not there): every worker of
    /// the run, the daemon's or a `thaw train`'s, adds to what the earlier ones wrote.
    pub fn open_worker_log(&self) -> Result<File> {
        let path = self.worker_log();
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))
    }
}

/// The class names stored beside weights that a run wrote (`classes.json` in the run
/// directory, found from `best.bpk` or a checkpoint's `model.bpk`).
pub fn class_names_near(weights: &Path) -> Option<Vec<String>> {
    let mut dir: Option<PathBuf> = weights.parent().map(Path::to_path_buf);
    for _ in 0..3 {
        let here = dir?;
        if let Some(classes) = RunDir::new(&here).read_classes() {
            return Some(classes);
        }
        dir = here.parent().map(Path::to_path_buf);
    }
    None
}

/// Seconds since the Unix epoch.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Writes `bytes` to `path` through a temporary file, fsync and rename, so readers never see
/// half a file; a failed write leaves `path` as it was and no temporary file behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let written = File::create(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    let done = written
        .with_context(|| format!("cannot write {}", path.display()))
        .and_then(|()| {
            std::fs::rename(&tmp, path)
                .with_context(|| format!("cannot replace {}", path.display()))
        });
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

/// Appends `bytes` to `path`, creating it.
pub(super) fn append(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot append to {}", path.display()))?;
    file.write_all(bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_read_back_and_a_missing_or_damaged_file_gives_none() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        assert_eq!(run.read_classes(), None);
        let names = vec!["cat".to_string(), "dog".to_string()];
        run.write_classes(&names).unwrap();
        assert_eq!(run.read_classes(), Some(names.clone()));
        // Found from the run's best weights and from a checkpoint's.
        assert_eq!(class_names_near(&run.best()), Some(names.clone()));
        let model = run.checkpoints().join("step-4").join("model.bpk");
        assert_eq!(class_names_near(&model), Some(names));
        std::fs::write(run.classes_path(), "{").unwrap();
        assert_eq!(run.read_classes(), None);
    }
}
