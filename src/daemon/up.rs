//! Starting the daemon: one per user, held by an exclusive lock on `<runtime>/thaw.lock` that
//! the kernel releases however the daemon ends (a daemon killed with -9 leaves a pid file and a
//! socket behind, which the next one replaces); detached from the terminal unless asked.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::config::Config;
use super::{Daemon, Shared, server};
use crate::client::{Client, socket_path};
use crate::paths::Paths;
use crate::run::write_atomic;

/// How long `thaw up` waits for the daemon it started to answer.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The daemon's log file when it runs detached.
pub fn log_path(paths: &Paths) -> PathBuf {
    paths.data.join("daemon.log")
}

fn pid_path(paths: &Paths) -> PathBuf {
    paths.runtime.join("thaw.pid")
}

/// The pid the running daemon wrote, if any.
pub fn recorded_pid(paths: &Paths) -> Option<u32> {
    std::fs::read_to_string(pid_path(paths))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// `thaw up`: starts the daemon, detached unless `foreground`; says so and succeeds when one
/// is already running.
pub fn up(paths: &Paths, foreground: bool) -> Result<i32> {
    if let Ok(client) = Client::connect(paths) {
        println!(
            "a thaw daemon is already running (pid {})",
            client.daemon.pid
        );
        return Ok(0);
    }
    private_dir(&paths.runtime)?;
    if foreground {
        return run_here(paths);
    }
    detach(paths)
}

/// The runtime directory, created if needed, ours and closed to everyone else (0700).
fn private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let meta = std::fs::metadata(dir)?;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        bail!(
            "{} belongs to uid {}, not to you (uid {me}): set THAW_HOME or fix its owner",
            dir.display(),
            meta.uid()
        );
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot make {} private", dir.display()))
}

/// The daemon's lock, held for its whole life.
struct Lock(#[allow(dead_code)] File);

/// Takes the lock; `None` when another daemon holds it.
fn try_lock(paths: &Paths) -> Result<Option<Lock>> {
    let path = paths.runtime.join("thaw.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: flock on a file descriptor we own.
    let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    Ok(taken.then_some(Lock(file)))
}

/// Runs the daemon in this process until `thaw down` or a signal.
fn run_here(paths: &Paths) -> Result<i32> {
    let Some(lock) = try_lock(paths)? else {
        let pid = recorded_pid(paths).map_or("unknown".into(), |p| p.to_string());
        println!("a thaw daemon is already running (pid {pid})");
        return Ok(0);
    };
    // The terminal going away must not end the daemon.
    // SAFETY: setting a signal to be ignored.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let config = Config::load(&paths.config, cores)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the daemon's runtime")?;
    runtime.block_on(serve(paths.clone(), config, cores))?;
    drop(lock);
    Ok(0)
}

async fn serve(paths: Paths, config: Config, cores: usize) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    tracing::info!(
        "thaw daemon {} starting (pid {}): data {}, {cores} cores, {} CPU slots{}",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        paths.data.display(),
        config.cpu_slots,
        if config.auto_resume {
            ", auto_resume"
        } else {
            ""
        }
    );
    let socket = socket_path(&paths);
    let pid_file = pid_path(&paths);
    let nvml = crate::gpu::Nvml::load();
    let no_gpus = nvml.why_none();
    let mut daemon = Daemon::start(paths, config, cores, Box::new(nvml));
    match &no_gpus {
        Some(why) => tracing::info!("no GPUs: {why}"),
        None => {
            for gpu in &daemon.gpus {
                tracing::info!(
                    "GPU {}: {} ({:.0} GiB)",
                    gpu.index,
                    gpu.name,
                    gpu.memory_total as f64 / (1u64 << 30) as f64
                );
            }
        }
    }
    daemon.no_gpus = no_gpus;
    let listener = server::bind(&socket)?;
    write_atomic(&pid_file, format!("{}\n", std::process::id()).as_bytes())?;
    let shared = Shared::new(daemon);
    let mut stopped = shared.stop.subscribe();
    let ticker = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(200));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                shared.lock().tick();
            }
        })
    };
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tracing::info!("listening on {}", socket.display());
    tokio::select! {
        result = server::accept(listener, shared.clone()) => result?,
        _ = stopped.changed() => tracing::info!("stopped by `thaw down`"),
        _ = term.recv() => tracing::info!("SIGTERM: the daemon stops; workers go on"),
        _ = int.recv() => tracing::info!("SIGINT: the daemon stops; workers go on"),
    }
    ticker.abort();
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(&pid_file);
    Ok(())
}

/// Starts `thaw up --foreground` in a new session with its output in the log file, and waits
/// until it answers.
fn detach(paths: &Paths) -> Result<i32> {
    std::fs::create_dir_all(&paths.data)
        .with_context(|| format!("cannot create {}", paths.data.display()))?;
    let log_file = log_path(paths);
    let log = File::options()
        .create(true)
        .append(true)
        .open(&log_file)
        .with_context(|| format!("cannot open {}", log_file.display()))?;
    let start_of_log = log.metadata().map(|m| m.len()).unwrap_or(0);
    let exe = crate::paths::executable()?;
    let mut command = Command::new(exe);
    command
        .args(["up", "--foreground"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    super::workers::in_own_session(&mut command);
    let mut child = command.spawn().context("cannot start the daemon")?;
    let started = Instant::now();
    loop {
        if let Ok(client) = Client::connect(paths) {
            println!(
                "thaw daemon started (pid {}); log: {}",
                client.daemon.pid,
                log_file.display()
            );
            return Ok(0);
        }
        if let Some(status) = child.try_wait()? {
            let said = log_since(&log_file, start_of_log);
            if status.success() && said.contains("already running") {
                print!("{said}");
                return Ok(0);
            }
            bail!(
                "the daemon exited at start ({status}); {}:\n{said}",
                log_file.display()
            );
        }
        if started.elapsed() > START_TIMEOUT {
            bail!(
                "the daemon (pid {}) did not answer within {}s; see {}",
                child.id(),
                START_TIMEOUT.as_secs(),
                log_file.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn log_since(path: &Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let _ = file.seek(SeekFrom::Start(offset));
        let _ = file.read_to_string(&mut text);
    }
    text
}
