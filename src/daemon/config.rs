//! The daemon's settings in `<config>/config.toml`: `cpu_slots`, `runs_per_gpu` and
//! `auto_resume`. Other keys
//! belong to other parts of thaw (the dashboard) and are left alone.

use std::path::Path;

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
}

impl Config {
    /// The defaults on a machine with `cores` cores.
    pub fn defaults(cores: usize) -> Self {
        Self {
            cpu_slots: cores.max(1),
            auto_resume: false,
            runs_per_gpu: 1,
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
    }
}
