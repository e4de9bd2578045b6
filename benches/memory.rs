//! Resident memory of a real `thaw worker` training `resnet18` (64x64, batch 32, flex, Adam) on
//! `demo:shapes`: with stem..layer3 frozen from the start against all trainable, one run after
//! the other, and whether the memory stays flat as the steps go by.
//!
//! `cargo bench --bench memory`. Environment: `THAW_BENCH_THREADS` (the worker's threads, all
//! cores), `THAW_BENCH_MEMORY_FROM` (the step after which memory must be flat, 40: past the
//! first epoch end, whose first checkpoint and `best.bpk` make a one-time peak),
//! `THAW_BENCH_MEMORY_SPAN` (steps watched after that, 90: a multiple of the 30 steps of an
//! epoch, so that the first and last watched epochs each hold one validation and checkpoint),
//! `THAW_BENCH_MEMORY_SECS` (the most seconds one run is watched, 300), `THAW_BENCH_MEMORY_CSV`
//! (a file to write every sample to), `THAW_BIN` (the thaw binary; the one cargo built for this
//! bench by default).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use thaw::paths::Paths;
use thaw::run::{Desired, RunDir};
use thaw::session::SessionSpec;

const SESSION: &str = r#"name = "memory-bench"
[defaults]
model = "resnet18"
data = "demo:shapes"
image_size = 64
batch_size = 32
device = "flex"
epochs = 1000
log_every_steps = 1
checkpoint_every_steps = 0
keep_checkpoints = 1
[[runs]]
name = "frozen"
freeze = ["stem", "layer1", "layer2", "layer3"]
[[runs]]
name = "trainable"
"#;

const SAMPLE_EVERY: Duration = Duration::from_millis(200);
/// The frozen run's peak must be at most this share of the trainable run's.
const PEAK_TARGET: f64 = 0.9;
/// Memory is flat when its steady peak grows by less than this many KiB per step after warm-up:
/// about 4 MiB over the 60 steps between the first and last watched epoch by default, above the
/// sampling noise (about 1 MiB) and below one leaked layer4 feature map a step (256 KiB).
const FLAT_KIB_PER_STEP: f64 = 64.0;
/// Training steps in an epoch of `demo:shapes` at batch 32 (960 training images).
const EPOCH_STEPS: usize = 30;

/// One reading of the worker: its step (from `state.json`) and resident memory.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Seconds since the worker was started.
    secs: f64,
    step: usize,
    rss_kib: u64,
}

/// What was seen of one worker.
struct Watched {
    name: String,
    samples: Vec<Sample>,
    /// VmHWM just before the stop request: the peak over the whole run so far.
    peak_kib: u64,
}

struct Config {
    threads: usize,
    from: usize,
    span: usize,
    max_secs: u64,
    bin: PathBuf,
}

fn main() -> Result<()> {
    let config = Config::from_env()?;
    let home = tempfile::tempdir().context("cannot create a temporary THAW_HOME")?;
    let paths = Paths {
        data: home.path().join("data"),
        config: home.path().join("config"),
        runtime: home.path().join("run"),
    };
    // Generated here, not by the first worker, so neither run's memory includes drawing it.
    thaw::engine::data::ensure_demo(&paths.demo_data(), "shapes")?;
    let file = home.path().join("session.toml");
    std::fs::write(&file, SESSION)?;
    let spec = SessionSpec::load(&file)?;
    let runs = thaw::session::store::prepare(&paths, &spec)?.runs;
    println!(
        "thaw worker, resnet18 64x64 batch 32 on flex, demo:shapes (30 steps an epoch, then \
         validation and a checkpoint), {} threads; steps {}..{} watched",
        config.threads,
        config.from,
        config.from + config.span
    );
    let mut watched = Vec::new();
    for run in &runs {
        let name = run
            .root
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        watched.push(watch(&name, run, home.path(), &config)?);
    }
    report(&watched, &config);
    if let Some(path) = std::env::var_os("THAW_BENCH_MEMORY_CSV") {
        write_samples(Path::new(&path), &watched)?;
    }
    Ok(())
}

/// Every sample as `run,secs,step,rss_kib`, for a closer look at the shape of the memory.
fn write_samples(path: &Path, watched: &[Watched]) -> Result<()> {
    let mut text = String::from("run,secs,step,rss_kib\n");
    for w in watched {
        for s in &w.samples {
            text.push_str(&format!(
                "{},{:.2},{},{}\n",
                w.name, s.secs, s.step, s.rss_kib
            ));
        }
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

impl Config {
    fn from_env() -> Result<Self> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let bin = std::env::var_os("THAW_BIN")
            .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_thaw")), PathBuf::from);
        if !bin.is_file() {
            bail!(
                "no thaw binary at {}: build it (cargo build --release) or set THAW_BIN",
                bin.display()
            );
        }
        let config = Self {
            threads: env_count("THAW_BENCH_THREADS", cores)?,
            from: env_count("THAW_BENCH_MEMORY_FROM", 40)?,
            span: env_count("THAW_BENCH_MEMORY_SPAN", 90)?,
            max_secs: env_count("THAW_BENCH_MEMORY_SECS", 300)? as u64,
            bin,
        };
        if !config.span.is_multiple_of(EPOCH_STEPS) || config.span < 2 * EPOCH_STEPS {
            bail!(
                "THAW_BENCH_MEMORY_SPAN={}: expected a multiple of {EPOCH_STEPS} (the steps of an \
                 epoch), at least {}",
                config.span,
                2 * EPOCH_STEPS
            );
        }
        Ok(config)
    }
}

/// A positive count from the environment variable `name`, or `default` when it is unset.
fn env_count(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(text) => match text.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => bail!("{name}={text:?}: expected a whole number above 0"),
        },
    }
}

/// Starts the worker of `run`, samples it until it passes the watched steps (or the time
/// runs out), then asks it to stop and waits for it.
fn watch(name: &str, run: &RunDir, home: &Path, config: &Config) -> Result<Watched> {
    let log_path = run.root.join("worker.log");
    let mut child = Command::new(&config.bin)
        .arg("worker")
        .arg(&run.root)
        .env("THAW_HOME", home)
        .env("THAW_THREADS", config.threads.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log_path)?)
        .spawn()
        .with_context(|| format!("cannot start {}", config.bin.display()))?;
    let pid = child.id();
    let last_step = config.from + config.span;
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut peak_kib = 0;
    loop {
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            bail!(
                "worker of run {name} exited early ({status}): {}",
                log.trim()
            );
        }
        if let Some((rss, hwm)) = memory_kib(pid) {
            let step = run.read_state().map_or(0, |s| s.step);
            samples.push(Sample {
                secs: start.elapsed().as_secs_f64(),
                step,
                rss_kib: rss,
            });
            peak_kib = hwm;
            if step >= last_step {
                break;
            }
        }
        if start.elapsed() > Duration::from_secs(config.max_secs) {
            eprintln!(
                "!!! run {name}: only at step {} after {}s (THAW_BENCH_MEMORY_SECS): stopping it",
                samples.last().map_or(0, |s| s.step),
                config.max_secs
            );
            break;
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
    stop(run, &mut child)?;
    println!(
        "run {name}: {} samples over {:.0}s, peak {}",
        samples.len(),
        start.elapsed().as_secs_f64(),
        mib(peak_kib)
    );
    Ok(Watched {
        name: name.to_string(),
        samples,
        peak_kib,
    })
}

/// Asks the worker to stop through `desired.json`, as the daemon would, and waits for it.
fn stop(run: &RunDir, child: &mut Child) -> Result<()> {
    run.write_desired(&Desired {
        stop: true,
        ..Desired::default()
    })?;
    let asked = Instant::now();
    while asked.elapsed() < Duration::from_secs(120) {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill()?;
    child.wait()?;
    bail!(
        "the worker of {} did not stop within 120s",
        run.root.display()
    )
}

/// VmRSS and VmHWM of process `pid`, in KiB.
fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// The highest resident memory sampled while the worker was at steps `from..to`. Memory rises
/// and falls within every step (activations are built, then freed), so the highest reading over
/// many steps is the steady peak, and does not depend on where in a step a sample fell.
fn peak_between(samples: &[Sample], from: usize, to: usize) -> Option<u64> {
    samples
        .iter()
        .filter(|s| s.step >= from && s.step < to)
        .map(|s| s.rss_kib)
        .max()
}

/// Growth of the steady peak from the first watched epoch to the last, in KiB per step.
fn growth_kib_per_step(samples: &[Sample], config: &Config) -> Option<f64> {
    let (from, to) = (config.from, config.from + config.span);
    let first = peak_between(samples, from, from + EPOCH_STEPS)?;
    let last = peak_between(samples, to - EPOCH_STEPS, to)?;
    Some((last as f64 - first as f64) / (to - EPOCH_STEPS - from) as f64)
}

/// Training speed over the watched steps (epoch ends included), in steps per second.
fn steps_per_sec(samples: &[Sample], from: usize) -> Option<f64> {
    let first = samples.iter().find(|s| s.step >= from)?;
    let last = samples.last()?;
    (last.secs > first.secs).then(|| (last.step - first.step) as f64 / (last.secs - first.secs))
}

fn report(watched: &[Watched], config: &Config) {
    let (from, to) = (config.from, config.from + config.span);
    let (first, last) = (from + EPOCH_STEPS, to - EPOCH_STEPS);
    let dash = || "-".to_string();
    println!();
    println!(
        "| run | peak RSS (VmHWM) | step peak {from}..{to} | step peak {from}..{first} | \
         step peak {last}..{to} | growth | steps/s |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for w in watched {
        let peak = |a, b| peak_between(&w.samples, a, b).map_or_else(dash, mib);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            w.name,
            mib(w.peak_kib),
            peak(from, to),
            peak(from, first),
            peak(last, to),
            growth_kib_per_step(&w.samples, config)
                .map_or_else(dash, |g| format!("{g:+.1} KiB/step")),
            steps_per_sec(&w.samples, from).map_or_else(dash, |r| format!("{r:.2}"))
        );
    }
    println!("\ntargets:");
    if let [frozen, trainable] = watched {
        let share = |a: u64, b: u64| a as f64 / b as f64;
        let whole = share(frozen.peak_kib, trainable.peak_kib);
        let steady = peak_between(&frozen.samples, from, to)
            .zip(peak_between(&trainable.samples, from, to))
            .map(|(f, t)| (share(f, t), t.saturating_sub(f)));
        println!(
            "  frozen run's peak is {:.0}% of the trainable run's ({} less; target at most \
             {:.0}%): {}",
            whole * 100.0,
            mib(trainable.peak_kib.saturating_sub(frozen.peak_kib)),
            PEAK_TARGET * 100.0,
            verdict(whole <= PEAK_TARGET)
        );
        if let Some((steady, less)) = steady {
            println!(
                "  frozen run's step peak is {:.0}% of the trainable run's ({} less)",
                steady * 100.0,
                mib(less)
            );
        }
    }
    for w in watched {
        match growth_kib_per_step(&w.samples, config) {
            Some(g) => println!(
                "  {}: step peak grows {g:+.1} KiB/step from steps {from}..{first} to \
                 {last}..{to} (flat below {FLAT_KIB_PER_STEP}): {}",
                w.name,
                verdict(g < FLAT_KIB_PER_STEP)
            ),
            None => println!(
                "  {}: not flat-checked: the worker did not reach step {to}",
                w.name
            ),
        }
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}
