//! The dashboard's cost (not a test: it prints figures for the README).
//!
//! Four tiny runs train on this machine's cores while `thaw attach` draws into a 100x30
//! pseudo-terminal whose every byte this bench reads and counts, as an SSH session would carry
//! them:
//! 1. bytes written to the terminal per second while the runs train;
//! 2. the same once every run is stopped (idle);
//! 3. the runs' training throughput (steps of all runs per second) with the dashboard attached
//!    against without it, measured without, with, without again.
//!
//! `cargo bench --bench dashboard`

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use thaw::client::Client;
use thaw::paths::Paths;
use thaw::protocol::{Request, Response, RunInfo};
use thaw::run::RunStatus;

use common::{cpu_model, load_average, paths, thaw};

const RUNS: usize = 4;
const WIDTH: u16 = 100;
const HEIGHT: u16 = 30;
const TRAINING_WINDOW: Duration = Duration::from_secs(60);
const IDLE_WINDOW: Duration = Duration::from_secs(30);
const THROUGHPUT_WINDOW: Duration = Duration::from_secs(40);
/// Targets: bytes a second while training and while idle; throughput with / without.
const TRAINING_TARGET: f64 = 4096.0;
const IDLE_TARGET: f64 = 0.0;
const THROUGHPUT_TARGET: f64 = 0.98;

fn status(paths: &Paths) -> Vec<RunInfo> {
    let mut client = Client::connect(paths).expect("connect");
    match client.request(&Request::Status).expect("status") {
        Response::Status { runs, .. } => runs,
        other => panic!("unexpected answer {other:?}"),
    }
}

fn total_steps(paths: &Paths) -> usize {
    status(paths).iter().map(|r| r.step).sum()
}

/// Clock ticks of CPU time, by whom.
#[derive(Debug, Default, Clone, Copy)]
struct Cpu {
    daemon: u64,
    workers: u64,
    dashboard: u64,
    /// Every process of the machine, these included.
    machine: u64,
}

impl Cpu {
    /// Now, for the processes started with this THAW_HOME and for the machine.
    fn now(home: &Path) -> Self {
        let mut cpu = Cpu {
            machine: machine_ticks(),
            ..Cpu::default()
        };
        for pid in processes(home) {
            let ticks = process_ticks(pid);
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let has = |word: &[u8]| cmdline.split(|&b| b == 0).any(|arg| arg == word);
            match (has(b"worker"), has(b"attach")) {
                (true, _) => cpu.workers += ticks,
                (_, true) => cpu.dashboard += ticks,
                _ => cpu.daemon += ticks,
            }
        }
        cpu
    }

    fn since(self, before: Cpu) -> Cpu {
        Cpu {
            daemon: self.daemon.saturating_sub(before.daemon),
            workers: self.workers.saturating_sub(before.workers),
            dashboard: self.dashboard.saturating_sub(before.dashboard),
            machine: self.machine.saturating_sub(before.machine),
        }
    }

    /// What other processes of the machine used.
    fn others(&self) -> u64 {
        self.machine
            .saturating_sub(self.daemon + self.workers + self.dashboard)
    }
}

/// Steps of all runs together over a stretch of time, and who used the CPU meanwhile.
struct Window {
    secs: f64,
    steps: usize,
    cpu: Cpu,
}

impl Window {
    fn measure(home: &Path, paths: &Paths, len: Duration) -> Self {
        let (start, steps, cpu) = (Instant::now(), total_steps(paths), Cpu::now(home));
        thread::sleep(len);
        Window {
            steps: total_steps(paths) - steps,
            cpu: Cpu::now(home).since(cpu),
            secs: start.elapsed().as_secs_f64(),
        }
    }

    fn steps_per_sec(&self) -> f64 {
        self.steps as f64 / self.secs
    }

    /// A part of the CPU time in cores (1.0: one core all the time).
    fn cpu_share(&self, part: impl Fn(&Cpu) -> u64) -> f64 {
        self.core_percent(part(&self.cpu)) / 100.0
    }

    /// Ticks as a share of one core over the window, in percent.
    fn core_percent(&self, ticks: u64) -> f64 {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        100.0 * ticks as f64 / hz / self.secs
    }

    fn describe(&self, name: &str) -> String {
        let c = &self.cpu;
        format!(
            "| {name} | {:.2} | {:.0}% | {:.1}% | {:.1}% | {:.0}% |",
            self.steps_per_sec(),
            self.core_percent(c.workers),
            self.core_percent(c.daemon),
            self.core_percent(c.dashboard),
            self.core_percent(c.others())
        )
    }
}

/// Busy clock ticks of all cores, from the first line of `/proc/stat` (idle and iowait left out).
fn machine_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|f| f.parse().ok())
        .collect();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    fields.iter().sum::<u64>() - idle
}

/// User and system clock ticks of process `pid` so far.
fn process_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some((_, after_name)) = stat.rsplit_once(')') else {
        return 0;
    };
    // utime and stime are the 14th and 15th fields; the 3rd is the first after the name.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(14) + field(15)
}

/// Every process started with this THAW_HOME: the daemon, workers, dashboards.
fn processes(home: &Path) -> Vec<i32> {
    let needle = format!("THAW_HOME={}", home.display());
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == needle.as_bytes()))
        })
        .collect()
}

fn wait_until(paths: &Paths, secs: u64, what: &str, cond: impl Fn(&[RunInfo]) -> bool) {
    let start = Instant::now();
    while !cond(&status(paths)) {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// Every write the dashboard made to its terminal: when, and what.
type Writes = Arc<Mutex<Vec<(Instant, Vec<u8>)>>>;

/// `thaw attach` in a pseudo-terminal of its own (its controlling terminal, as a login's).
struct Dashboard {
    child: Child,
    master: File,
    writes: Writes,
    started: Instant,
}

impl Dashboard {
    fn attach(home: &Path) -> Self {
        let (mut master, mut slave) = (-1, -1);
        let size = libc::winsize {
            ws_row: HEIGHT,
            ws_col: WIDTH,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two descriptors; a null name and termios are allowed.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors were just opened and are owned here only.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let mut cmd = thaw(home);
        cmd.arg("attach")
            .env("TERM", "xterm-256color")
            .env_remove("COLORTERM")
            .env_remove("NO_COLOR")
            .stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let started = Instant::now();
        let child = cmd.spawn().expect("start thaw attach");
        // The parent's copy of the slave went with `cmd`: the master reads EOF when it exits.
        drop(cmd);
        let master = File::from(master);
        let writes: Writes = Arc::default();
        let mut reader = master.try_clone().unwrap();
        let log = writes.clone();
        thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                log.lock()
                    .unwrap()
                    .push((Instant::now(), buf[..n].to_vec()));
            }
        });
        Self {
            child,
            master,
            writes,
            started,
        }
    }

    /// Bytes and writes since `from`: each write's offset from `from` and its text.
    fn since(&self, from: Instant) -> (usize, Vec<(f64, String)>) {
        let writes = self.writes.lock().unwrap();
        let after: Vec<(f64, &Vec<u8>)> = writes
            .iter()
            .filter(|(at, _)| *at >= from)
            .map(|(at, bytes)| (at.duration_since(from).as_secs_f64(), bytes))
            .collect();
        let total = after.iter().map(|(_, bytes)| bytes.len()).sum();
        let texts = after
            .into_iter()
            .map(|(at, bytes)| (at, visible(bytes)))
            .collect();
        (total, texts)
    }

    /// Waits until the screen is drawn and the terminal has been quiet for a moment.
    fn wait_drawn(&self) {
        let start = Instant::now();
        loop {
            let last = self.writes.lock().unwrap().last().map(|(at, _)| *at);
            if last.is_some_and(|at| at.elapsed() > Duration::from_millis(300)) {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "nothing drawn");
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn detach(mut self) {
        self.master.write_all(b"q").expect("send q");
        let start = Instant::now();
        while self.child.try_wait().expect("wait").is_none() {
            if start.elapsed() > Duration::from_secs(10) {
                let _ = self.child.kill();
                panic!("thaw attach did not exit on q");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Stops the daemon and kills whatever still runs with this THAW_HOME, also when the bench fails.
struct Teardown<'a>(&'a Path);

impl Drop for Teardown<'_> {
    fn drop(&mut self) {
        let _ = thaw(self.0).arg("down").stderr(Stdio::null()).status();
        for pid in processes(self.0) {
            // SAFETY: kill with a pid this bench started and a plain signal number.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

struct Figures {
    first_frame: usize,
    training: (usize, f64),
    training_writes: usize,
    idle: (usize, f64),
    idle_writes: Vec<(f64, String)>,
    without: [Window; 2],
    with: Window,
}

fn measure(home: &Path) -> Figures {
    let paths = paths(home);
    std::fs::create_dir_all(&paths.config).unwrap();
    std::fs::write(
        paths.config.join("config.toml"),
        format!("cpu_slots = {RUNS}\n"),
    )
    .unwrap();
    let _teardown = Teardown(home);
    assert!(thaw(home).arg("up").status().unwrap().success());
    let mut session = String::from(
        "name = \"bench\"\n[defaults]\nmodel = \"resnet-mini\"\ndata = \"demo:shapes-small\"\n\
         image_size = 16\nbatch_size = 16\ndevice = \"flex\"\nlr = 2e-3\noptimizer = \"adam\"\n\
         epochs = 1000\ncheckpoint_every_steps = 50\n",
    );
    for i in 0..RUNS {
        session.push_str(&format!("[[runs]]\nname = \"r{i}\"\nseed = {i}\n"));
    }
    let file = home.join("bench.toml");
    std::fs::write(&file, session).unwrap();
    assert!(
        thaw(home)
            .arg("launch")
            .arg(&file)
            .status()
            .unwrap()
            .success()
    );
    wait_until(&paths, 300, "every run past step 20", |runs| {
        runs.len() == RUNS && runs.iter().all(|r| r.step >= 20)
    });

    println!(
        "throughput without a dashboard ({} s)...",
        THROUGHPUT_WINDOW.as_secs()
    );
    let without_first = Window::measure(home, &paths, THROUGHPUT_WINDOW);

    println!(
        "attached: bytes over {} s of training...",
        TRAINING_WINDOW.as_secs()
    );
    let dashboard = Dashboard::attach(home);
    dashboard.wait_drawn();
    let first_frame = dashboard.since(dashboard.started).0;
    let start = Instant::now();
    // The throughput window sits in the middle of the bytes window.
    let margin = (TRAINING_WINDOW - THROUGHPUT_WINDOW) / 2;
    thread::sleep(margin);
    let with = Window::measure(home, &paths, THROUGHPUT_WINDOW);
    thread::sleep(TRAINING_WINDOW.saturating_sub(start.elapsed()));
    let (bytes, writes) = dashboard.since(start);
    let training = (bytes, bytes as f64 / start.elapsed().as_secs_f64());
    dashboard.detach();

    println!(
        "throughput without a dashboard again ({} s)...",
        THROUGHPUT_WINDOW.as_secs()
    );
    let without_again = Window::measure(home, &paths, THROUGHPUT_WINDOW);

    println!(
        "attached, every run stopped: bytes over {} s idle...",
        IDLE_WINDOW.as_secs()
    );
    let dashboard = Dashboard::attach(home);
    dashboard.wait_drawn();
    for i in 0..RUNS {
        let stopped = thaw(home).args(["stop", &format!("bench/r{i}")]).status();
        assert!(stopped.unwrap().success(), "thaw stop bench/r{i}");
    }
    wait_until(&paths, 120, "every run stopped", |runs| {
        runs.iter().all(|r| r.status == RunStatus::Stopped)
    });
    // The header's CPU load falls to idle within two samples (2 s apart).
    thread::sleep(Duration::from_secs(6));
    let start = Instant::now();
    thread::sleep(IDLE_WINDOW);
    let (bytes, idle_writes) = dashboard.since(start);
    let idle = (bytes, bytes as f64 / start.elapsed().as_secs_f64());
    dashboard.detach();
    Figures {
        first_frame,
        training,
        training_writes: writes.len(),
        idle,
        idle_writes,
        without: [without_first, without_again],
        with,
    }
}

fn report(f: &Figures) {
    let without = (f.without[0].steps_per_sec() + f.without[1].steps_per_sec()) / 2.0;
    let ratio = f.with.steps_per_sec() / without;
    println!();
    println!("| figure | measured | target | |");
    println!("|---|---:|---:|---|");
    println!(
        "| bytes/s to the terminal, {RUNS} runs training ({} s) | {:.0} B/s ({} B in {} writes) | < {TRAINING_TARGET:.0} B/s | {} |",
        TRAINING_WINDOW.as_secs(),
        f.training.1,
        f.training.0,
        f.training_writes,
        verdict(f.training.1 < TRAINING_TARGET)
    );
    println!(
        "| bytes/s to the terminal, every run stopped ({} s) | {:.1} B/s ({} B in {} writes) | {IDLE_TARGET:.0} | {} |",
        IDLE_WINDOW.as_secs(),
        f.idle.1,
        f.idle.0,
        f.idle_writes.len(),
        verdict(f.idle.1 <= IDLE_TARGET)
    );
    println!(
        "| training throughput with the dashboard / without | {ratio:.3} ({:.2} vs {:.2} steps/s) | >= {THROUGHPUT_TARGET} | {} |",
        f.with.steps_per_sec(),
        without,
        verdict(ratio >= THROUGHPUT_TARGET)
    );
    println!("\nfirst frame: {} B", f.first_frame);
    println!(
        "\n| {} s window | steps/s | workers' CPU | daemon's CPU | dashboard's CPU | other processes' CPU |",
        THROUGHPUT_WINDOW.as_secs()
    );
    println!("|---|---:|---:|---:|---:|---:|");
    println!("{}", f.without[0].describe("without a dashboard"));
    println!("{}", f.with.describe("dashboard attached"));
    println!("{}", f.without[1].describe("without again"));
    println!(
        "(CPU as a share of one core; the machine has {} of them)",
        cores()
    );
    // What the dashboard took from the workers, whatever else ran on the machine: its own CPU
    // and what the daemon spent more on a subscriber, against what the workers used.
    let daemon_without =
        (f.without[0].cpu_share(|c| c.daemon) + f.without[1].cpu_share(|c| c.daemon)) / 2.0;
    let taken = f.with.cpu_share(|c| c.dashboard)
        + (f.with.cpu_share(|c| c.daemon) - daemon_without).max(0.0);
    println!(
        "the dashboard's CPU and the daemon's extra CPU for it were {:.2}% of the workers' while attached: \
         a throughput ratio of about {:.3} on a machine with nothing else to do",
        100.0 * taken / f.with.cpu_share(|c| c.workers),
        1.0 - taken / f.with.cpu_share(|c| c.workers)
    );
    let spread = (f.without[0].steps_per_sec() - f.without[1].steps_per_sec()).abs() / without;
    if spread > 1.0 - THROUGHPUT_TARGET {
        println!(
            "!!! the two windows without a dashboard differ by {:.1}%, more than the {:.0}% \
             being measured: the ratio is noise; see the other processes' CPU",
            100.0 * spread,
            100.0 * (1.0 - THROUGHPUT_TARGET)
        );
    }
    if !f.idle_writes.is_empty() {
        let writes: Vec<String> = f
            .idle_writes
            .iter()
            .map(|(at, text)| format!("  +{at:.1} s: {text:?}"))
            .collect();
        println!("\nidle writes (the text they drew):\n{}", writes.join("\n"));
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The text a write draws, without its escape sequences.
fn visible(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: parameters up to a final byte in @..~.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

fn main() {
    println!(
        "{RUNS} resnet-mini runs (16x16, batch 16, flex), dashboard {WIDTH}x{HEIGHT}; \
         machine: {}, {} cores; load average at start: {}",
        cpu_model(),
        cores(),
        load_average()
    );
    let home = tempfile::tempdir().expect("temp dir");
    let figures = measure(home.path());
    report(&figures);
    // Other work on the machine skews every figure: say how busy it was.
    println!("\nload average at the end: {}", load_average());
}
