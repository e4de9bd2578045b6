//! Where thaw keeps its files: `THAW_HOME` when set, else the platform's directories.

use std::path::PathBuf;

use anyhow::{Context, Result};

/// The directories thaw reads and writes.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Sessions, runs, demo data.
    pub data: PathBuf,
    /// config.toml and user themes.
    pub config: PathBuf,
    /// The daemon's socket and pid file.
    pub runtime: PathBuf,
}

impl Paths {
    /// `THAW_HOME/{data,config,run}` when `THAW_HOME` is set, else the user's directories.
    pub fn from_env() -> Result<Self> {
        if let Some(home) = std::env::var_os("THAW_HOME") {
            let home = PathBuf::from(home);
            return Ok(Self {
                data: home.join("data"),
                config: home.join("config"),
                runtime: home.join("run"),
            });
        }
        let dirs = directories::ProjectDirs::from("", "", "thaw")
            .context("cannot find a home directory for thaw's files: set THAW_HOME")?;
        let runtime = dirs
            .runtime_dir()
            .map(PathBuf::from)
            .unwrap_or_else(|| dirs.data_local_dir().join("run"));
        Ok(Self {
            data: dirs.data_local_dir().to_path_buf(),
            config: dirs.config_dir().to_path_buf(),
            runtime,
        })
    }

    /// Where the demo ImageFolders are generated on first use.
    pub fn demo_data(&self) -> PathBuf {
        self.data.join("demo-data")
    }
}

/// The thaw executable, to start workers and daemons with. A binary replaced while this
/// process runs (an upgrade, a rebuild) shows as `PATH (deleted)` on Linux: the new one at
/// the same path is what a worker started now should run.
pub fn executable() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the thaw executable")?;
    let text = exe.to_string_lossy();
    match text.strip_suffix(" (deleted)") {
        Some(path) if std::path::Path::new(path).is_file() => Ok(PathBuf::from(path)),
        _ => Ok(exe),
    }
}
