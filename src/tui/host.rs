//! What the header says about the machine: its name, cores, CPU load and how long the daemon
//! has run, sampled from `/proc` every few seconds, in steps coarse enough that an idle
//! machine's header does not change (so an idle dashboard writes nothing).

use crate::run::process::{hostname, start_time as process_start_time};
use crate::tui::app::HostStats;

/// CPU load moves the header only when it changes by this many percentage points.
const LOAD_STEP: u32 = 10;

/// Samples the host; keeps the previous CPU counters to measure load between samples.
pub struct HostSampler {
    hostname: String,
    cores: usize,
    /// (busy, total) jiffies at the last sample.
    last: Option<(u64, u64)>,
    shown: Option<u32>,
}

impl HostSampler {
    pub fn new() -> Self {
        Self {
            hostname: hostname(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            last: None,
            shown: None,
        }
    }

    /// The host now, with the uptime of the daemon process `pid`.
    pub fn sample(&mut self, daemon_pid: Option<u32>) -> HostStats {
        if let Some(now) = cpu_jiffies()
            && let Some((busy, total)) = self.last.replace(now)
            && now.1 > total
        {
            let percent = (100 * now.0.saturating_sub(busy) / (now.1 - total)) as u32;
            let moved = self
                .shown
                .is_none_or(|shown| shown.abs_diff(percent) >= LOAD_STEP);
            if moved {
                self.shown = Some(percent / LOAD_STEP * LOAD_STEP);
            }
        }
        HostStats {
            hostname: self.hostname.clone(),
            cores: self.cores,
            cpu_percent: self.shown,
            daemon_uptime: daemon_pid.and_then(uptime).map(|s| s / 60 * 60),
        }
    }
}

/// Busy and total jiffies of all cores, from the first line of `/proc/stat`.
fn cpu_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().sum();
    // idle and iowait are the 4th and 5th fields.
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// Seconds since process `pid` started.
fn uptime(pid: u32) -> Option<u64> {
    let started = process_start_time(pid);
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let boot_uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    (started > 0 && ticks > 0)
        .then(|| (boot_uptime - started as f64 / ticks as f64).max(0.0) as u64)
}
