//! The daemon's settings in `<config>/config.toml`: `cpu_slots`, `runs_per_gpu`,
//! `auto_resume`, `slurm_poll_secs` and `slurm_start_timeout_secs`. Other keys belong to other
//! parts of thaw (the dashboard) and are left alone.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};

/// What the daemon reads from `config.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// CPU runs training at once (default: the number of cores).
    pub cpu_slots: usize,
    /// Restart interrupted runs when the daemon starts.
    pub auto_resume: bool,
    /// Runs training at once on one GPU.
    pub runs_per_gpu: usize,
    /// How often Slurm is asked about the jobs of Slurm runs (`squeue --json`).
    pub slurm_poll: Duration,
    /// How long a running Slurm job's worker may take to write its first `state.json` before
    /// the run directory is taken not to be shared with the node.
    pub slurm_start_timeout: Duration,
}

impl Config {
    /// The defaults on a machine with `cores` cores.
    pub fn defaults(cores: usize) -> Self {
        Self {
            cpu_slots: cores.max(1),
            auto_resume: false,
            runs_per_gpu: 1,
            slurm_poll: Duration::from_secs(5),
            slurm_start_timeout: Duration::from_secs(120),
        }
    }

    /// Reads `config.toml` from `dir`; a missing file gives the defaults.
    pub fn load(dir: &Path, cores: usize) -> Result<Self> {
        let path = dir.join("config.toml");
        let mut config = Self::defaults(cores);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(config),
            Err(e) => bail!("cannot read {}: {e}", path.display()),
        };
        let table: toml::Table = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{} is not valid TOML: {e}", path.display()))?;
        if let Some(value) = table.get("cpu_slots") {
            match value.as_integer() {
                Some(n) if n >= 1 => config.cpu_slots = n as usize,
                _ => bail!(
                    "{}: `cpu_slots` must be a whole number of at least 1, not {value}",
                    path.display()
                ),
            }
        }
        if let Some(value) = table.get("runs_per_gpu") {
            match value.as_integer() {
                Some(n) if n >= 1 => config.runs_per_gpu = n as usize,
                _ => bail!(
                    "{}: `runs_per_gpu` must be a whole number of at least 1, not {value}",
                    path.display()
                ),
            }
        }
        if let Some(value) = table.get("auto_resume") {
            match value.as_bool() {
                Some(b) => config.auto_resume = b,
                None => bail!(
                    "{}: `auto_resume` must be true or false, not {value}",
                    path.display()
                ),
            }
        }
        let seconds = |key: &str| -> Result<Option<Duration>> {
            let Some(value) = table.get(key) else {
                return Ok(None);
            };
            let secs = value
                .as_float()
                .or_else(|| value.as_integer().map(|n| n as f64));
            match secs {
                Some(s) if s.is_finite() && s > 0.0 => Ok(Some(Duration::from_secs_f64(s))),
                _ => bail!(
                    "{}: `{key}` must be a positive number of seconds, not {value}",
                    path.display()
                ),
            }
        };
        if let Some(poll) = seconds("slurm_poll_secs")? {
            config.slurm_poll = poll;
        }
        if let Some(timeout) = seconds("slurm_start_timeout_secs")? {
            config.slurm_start_timeout = timeout;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_and_bad_values_named() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Config::load(dir.path(), 4).unwrap(), Config::defaults(4));
        std::fs::write(
            dir.path().join("config.toml"),
            "cpu_slots = 3\nauto_resume = true\ntheme = \"dark\"\n",
        )
        .unwrap();
        let config = Config::load(dir.path(), 4).unwrap();
        assert_eq!((config.cpu_slots, config.auto_resume), (3, true));
        std::fs::write(dir.path().join("config.toml"), "cpu_slots = 0\n").unwrap();
        let err = Config::load(dir.path(), 4).unwrap_err().to_string();
        assert!(
            err.contains("config.toml") && err.contains("cpu_slots"),
            "{err}"
        );
        std::fs::write(
            dir.path().join("config.toml"),
            "slurm_poll_secs = 0.5\nslurm_start_timeout_secs = 30\n",
        )
        .unwrap();
        let config = Config::load(dir.path(), 4).unwrap();
        assert_eq!(config.slurm_poll, Duration::from_millis(500));
        assert_eq!(config.slurm_start_timeout, Duration::from_secs(30));
        std::fs::write(dir.path().join("config.toml"), "slurm_poll_secs = -1\n").unwrap();
        let err = Config::load(dir.path(), 4).unwrap_err().to_string();
        assert!(
            err.contains("slurm_poll_secs") && err.contains("positive"),
            "{err}"
        );
    }
}
