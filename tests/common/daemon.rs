//! A real daemon in a private THAW_HOME, for the daemon and dashboard tests.

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use thaw::paths::Paths;
use thaw::protocol::RunInfo;

use super::Home;

/// A daemon in its own THAW_HOME. Dropping it (also when a test fails) runs `thaw down` and
/// then kills every process still running with that THAW_HOME: the daemon, workers, clients.
pub struct Daemon {
    pub home: Home,
}

impl Daemon {
    /// A home with `cpu_slots` in its config, and the daemon started in it.
    pub fn up(cpu_slots: usize) -> Self {
        let daemon = Self::stopped(cpu_slots);
        daemon.ok(&["up"]);
        daemon
    }

    /// A home with `cpu_slots` in its config, no daemon yet.
    pub fn stopped(cpu_slots: usize) -> Self {
        let home = Home::new();
        std::fs::create_dir_all(home.path().join("config")).unwrap();
        home.write("config/config.toml", &format!("cpu_slots = {cpu_slots}\n"));
        Self { home }
    }

    pub fn paths(&self) -> Paths {
        Paths {
            data: self.home.path().join("data"),
            config: self.home.path().join("config"),
            runtime: self.home.path().join("run"),
        }
    }

    pub fn thaw(&self, args: &[&str]) -> Output {
        self.home.run_cmd(args)
    }

    /// Runs a verb that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.thaw(args);
        assert!(
            out.status.success(),
            "thaw {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a verb that must fail; its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.thaw(args);
        assert!(
            !out.status.success(),
            "thaw {args:?} succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn launch(&self, file: &str, text: &str) -> String {
        let path = self.home.write(file, text);
        self.ok(&["launch", path.to_str().unwrap()])
    }

    pub fn status(&self) -> Vec<RunInfo> {
        serde_json::from_str(&self.ok(&["status", "--json"])).expect("status --json parses")
    }

    pub fn run(&self, name: &str) -> RunInfo {
        self.status()
            .into_iter()
            .find(|r| r.full_name() == name)
            .unwrap_or_else(|| panic!("no run {name} in status"))
    }

    /// Waits until `cond` holds for run `name` (as `status --json` shows it).
    pub fn wait_run(
        &self,
        name: &str,
        secs: u64,
        what: &str,
        cond: impl Fn(&RunInfo) -> bool,
    ) -> RunInfo {
        let start = Instant::now();
        loop {
            let run = self.run(name);
            if cond(&run) {
                return run;
            }
            assert!(
                start.elapsed() < Duration::from_secs(secs),
                "timed out waiting for {name}: {what}: {run:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn pid(&self) -> u32 {
        std::fs::read_to_string(self.home.path().join("run/thaw.pid"))
            .expect("thaw.pid")
            .trim()
            .parse()
            .expect("a pid")
    }

    /// Every process started with this THAW_HOME (daemon, workers, clients).
    pub fn processes(&self) -> Vec<u32> {
        let needle = format!("THAW_HOME={}", self.home.path().display());
        let me = std::process::id();
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| pid != me)
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == needle.as_bytes()))
            })
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(mut down) = self
            .home
            .thaw()
            .arg("down")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            let start = Instant::now();
            while down.try_wait().ok().flatten().is_none() && start.elapsed().as_secs() < 30 {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = down.kill();
            let _ = down.wait();
        }
        for pid in self.processes() {
            kill(pid, libc::SIGKILL);
        }
    }
}

/// Sends `signal` to `pid`.
pub fn kill(pid: u32, signal: i32) {
    // SAFETY: kill with a pid this test started and a plain signal number.
    unsafe {
        libc::kill(pid as i32, signal);
    }
}
