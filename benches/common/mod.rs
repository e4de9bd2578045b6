//! Shared by the benches: a private THAW_HOME's paths, the `thaw` binary, and the machine the
//! figures come from. Each bench uses what it needs.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};

use thaw::paths::Paths;

/// The directories of a THAW_HOME.
pub fn paths(home: &Path) -> Paths {
    Paths {
        data: home.join("data"),
        config: home.join("config"),
        runtime: home.join("run"),
    }
}

/// The `thaw` binary with THAW_HOME set, no input and its output dropped.
pub fn thaw(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_thaw"));
    cmd.env("THAW_HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

/// The processor, as /proc/cpuinfo names it.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, name)| name.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string())
}

/// The one-minute load average.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string())
}
