//! Shared by the integration tests: a private THAW_HOME, the real `thaw` binary, run files.
#![allow(dead_code)]

pub mod daemon;
pub mod slurm;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use thaw::run::{Event, RunDir, RunState};

/// A temporary THAW_HOME with the demo data generated once into it.
pub struct Home {
    pub dir: tempfile::TempDir,
    /// More environment for every thaw command (a Slurm cluster's `SLURM_CONF`, say).
    pub env: Vec<(String, String)>,
    /// The workers started with [`Home::worker`], killed on drop: a test that fails while one
    /// trains (or waits, paused) does not leave it running.
    workers: std::cell::RefCell<Vec<u32>>,
}

impl Drop for Home {
    fn drop(&mut self) {
        let home = self.path().to_string_lossy().to_string();
        for &pid in self.workers.borrow().iter() {
            // Only a process still working in this home: the pid of a worker that exited may
            // be another process's by now.
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&home) {
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
    }
}

impl Home {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            env: Vec::new(),
            workers: Default::default(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }

    pub fn thaw(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_thaw"));
        cmd.env("THAW_HOME", self.path())
            .env_remove("NO_COLOR")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    pub fn run_cmd(&self, args: &[&str]) -> Output {
        self.thaw()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run thaw")
    }

    /// Runs thaw, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run_cmd(args);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "thaw {args:?} failed:\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    pub fn run_dir(&self, session: &str, run: &str) -> RunDir {
        RunDir::new(
            self.path()
                .join("data/sessions")
                .join(session)
                .join("runs")
                .join(run),
        )
    }

    /// Writes a run directory by hand, as the daemon or `thaw train` would, for `thaw worker`.
    pub fn prepare_run(&self, session_toml: &str) -> Vec<RunDir> {
        let file = self.write("session.toml", session_toml);
        let spec = thaw::session::SessionSpec::load(&file).expect("valid session");
        let paths = thaw::paths::Paths {
            data: self.path().join("data"),
            config: self.path().join("config"),
            runtime: self.path().join("run"),
        };
        thaw::session::store::prepare(&paths, &spec)
            .expect("prepare runs")
            .runs
    }

    pub fn worker(&self, run: &RunDir, threads: usize) -> Child {
        self.worker_with(run, threads, &[])
    }

    /// A worker with more environment, as `thaw train` starts them (`THAW_FAIL_ON_NAN`).
    pub fn worker_with(&self, run: &RunDir, threads: usize, env: &[(&str, &str)]) -> Child {
        let child = self
            .thaw()
            .arg("worker")
            .arg(&run.root)
            .env("THAW_THREADS", threads.to_string())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start worker");
        self.workers.borrow_mut().push(child.id());
        child
    }
}

/// Waits until `cond` holds for the run's state, or panics after `secs`.
pub fn wait_state(
    run: &RunDir,
    secs: u64,
    what: &str,
    cond: impl Fn(&RunState) -> bool,
) -> RunState {
    let start = Instant::now();
    loop {
        if let Ok(state) = run.read_state()
            && cond(&state)
        {
            return state;
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}: {:?}",
            run.read_state().ok()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn events(run: &RunDir, kind: &str) -> Vec<Event> {
    run.read_events()
        .into_iter()
        .filter(|e| e.kind.word() == kind)
        .collect()
}

/// `(step, loss)` of every training row of `metrics.csv`, the loss as written.
pub fn train_losses(run: &RunDir) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(run.metrics_path()).expect("metrics.csv");
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.get(2) == Some(&"train")).then(|| (f[0].parse().expect("step"), f[3].to_string()))
        })
        .collect()
}

pub fn wait_exit(child: &mut Child, secs: u64) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code().unwrap_or(-1);
        }
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            panic!("worker did not exit within {secs}s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The Python with torch and torchvision: THAW_PYTHON, else CI's virtual environment.
pub fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os("THAW_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            let home = std::env::var_os("HOME")?;
            Some(Path::new(&home).join(".cache/thaw-ci/venv/bin/python"))
        })?;
    let ok = Command::new(&candidate)
        .args(["-c", "import torch, torchvision, safetensors"])
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(candidate);
    }
    assert!(
        std::env::var_os("THAW_REQUIRE_TORCH").is_none(),
        "THAW_REQUIRE_TORCH is set but {} has no torch/torchvision",
        candidate.display()
    );
    eprintln!("\n*** SKIPPED: no Python with torch and torchvision (set THAW_PYTHON) ***\n");
    None
}

/// Runs `tests/pytorch/SCRIPT` with `args` on [`python`]'s interpreter (which must be there)
/// and returns its standard output; its standard error is the panic message if it fails.
pub fn pytorch(script: &str, args: &[&std::ffi::OsStr]) -> Vec<u8> {
    let python = python().expect("a Python with torch");
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/pytorch")
        .join(script);
    let out = Command::new(python)
        .arg(&script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
