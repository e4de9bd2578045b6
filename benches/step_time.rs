//! Training-step time of `resnet18` at 64x64, batch 32, Adam: thaw on flex (and on tch:cpu when
//! built with `--features tch`) against PyTorch eager on the same model, batch and thread count,
//! all groups trainable and with stem..layer3 frozen.
//!
//! `cargo bench --bench step_time` (`cargo bench --features tch --bench step_time` adds
//! tch:cpu). Environment: `THAW_BENCH_STEPS` (timed steps, 8), `THAW_BENCH_WARMUP` (untimed
//! steps first, 3), `THAW_BENCH_THREADS` (every backend's CPU threads, all cores),
//! `THAW_BENCH_PYTHON` (a Python with torch; default the one `.ci/run` installs, else
//! `python3`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::{Module, ParamGroup};
use serde::Deserialize;
use thaw::engine::data::Batch;
use thaw::engine::device::{DeviceSpec, set_cpu_threads};
use thaw::engine::model::{Classifier, ModelKind, ModelShape, ResNet, ResNetShape, layer_groups};
use thaw::engine::trainer::step::{gradients, loss_and_correct, module_rates, optimizer, tensors};
use thaw::session::{OptimizerKind, RunSpec};

use common::{cpu_model, load_average};

const BATCH: usize = 32;
const IMAGE_SIZE: usize = 64;
const CLASSES: usize = 10;
/// The groups frozen in the "frozen" configuration, as in a typical fine-tuning run.
const FROZEN: [&str; 4] = ["stem", "layer1", "layer2", "layer3"];
/// thaw's trainable step on tch:cpu may take at most this many times PyTorch's.
const TCH_TARGET: f64 = 1.5;

/// What to run, from the environment.
struct Config {
    steps: usize,
    warmup: usize,
    threads: usize,
    python: PathBuf,
}

/// Median step times of one backend, in milliseconds.
struct Timing {
    name: String,
    trainable: f64,
    frozen: f64,
    is_tch: bool,
}

/// The timed steps of one configuration, split into their phases, in milliseconds.
#[derive(Default)]
struct Phases {
    /// Batch to tensors, forward, loss and reading it back.
    forward: Vec<f64>,
    /// Backward pass into per-parameter gradients.
    backward: Vec<f64>,
    /// The optimizer's update.
    update: Vec<f64>,
}

impl Phases {
    fn total(&self) -> f64 {
        let steps: Vec<f64> = (0..self.forward.len())
            .map(|i| self.forward[i] + self.backward[i] + self.update[i])
            .collect();
        median(&steps)
    }

    fn describe(&self) -> String {
        format!(
            "step {:.0} ms (forward {:.0}, backward {:.0}, update {:.0})",
            self.total(),
            median(&self.forward),
            median(&self.backward),
            median(&self.update)
        )
    }
}

/// What `pytorch_step.py` prints.
#[derive(Deserialize)]
struct PytorchReport {
    torch: String,
    threads: usize,
    trainable_ms: f64,
    frozen_ms: f64,
    trainable_phases_ms: PytorchPhases,
    frozen_phases_ms: PytorchPhases,
}

/// Median milliseconds of each phase of PyTorch's step.
#[derive(Deserialize)]
struct PytorchPhases {
    forward: f64,
    backward: f64,
    update: f64,
}

impl PytorchPhases {
    fn describe(&self, step: f64) -> String {
        format!(
            "step {step:.0} ms (forward {:.0}, backward {:.0}, update {:.0})",
            self.forward, self.backward, self.update
        )
    }
}

fn main() -> Result<()> {
    let config = Config::from_env()?;
    // rayon's global pool can be built once per process: one thread count for every backend.
    set_cpu_threads(config.threads);
    println!(
        "resnet18, {IMAGE_SIZE}x{IMAGE_SIZE}, batch {BATCH}, {CLASSES} classes, Adam lr 1e-3, \
         {} threads; median of {} steps after {} warm-up steps",
        config.threads, config.steps, config.warmup
    );
    println!(
        "machine: {}, {} cores; load average at start: {}",
        cpu_model(),
        cores(),
        load_average()
    );
    let mut timings = Vec::new();
    for device in devices() {
        let trainable = thaw_steps(device, false, &config)?;
        let frozen = thaw_steps(device, true, &config)?;
        println!("thaw {device}, trainable: {}", trainable.describe());
        println!("thaw {device}, frozen:    {}", frozen.describe());
        let (trainable, frozen) = (trainable.total(), frozen.total());
        timings.push(Timing {
            name: format!("thaw {device}"),
            trainable,
            frozen,
            is_tch: device == DeviceSpec::TchCpu,
        });
    }
    let pytorch = match pytorch_steps(&config) {
        Ok(report) => {
            println!(
                "PyTorch, trainable: {}",
                report.trainable_phases_ms.describe(report.trainable_ms)
            );
            println!(
                "PyTorch, frozen:    {}",
                report.frozen_phases_ms.describe(report.frozen_ms)
            );
            if report.threads != config.threads {
                eprintln!(
                    "warning: PyTorch ran with {} threads, not {}",
                    report.threads, config.threads
                );
            }
            Some(report)
        }
        Err(err) => {
            eprintln!("\n!!! PyTorch reference NOT measured: {err:#}");
            eprintln!(
                "!!! set THAW_BENCH_PYTHON to a Python with torch installed; \
                 thaw's own figures follow\n"
            );
            None
        }
    };
    report(&timings, pytorch.as_ref());
    // Other work on the machine skews every figure: say how busy it was.
    println!("\nload average at the end: {}", load_average());
    Ok(())
}

impl Config {
    fn from_env() -> Result<Self> {
        let python = match std::env::var_os("THAW_BENCH_PYTHON") {
            Some(p) => PathBuf::from(p),
            None => ci_python()
                .filter(|p| p.is_file())
                .unwrap_or_else(|| PathBuf::from("python3")),
        };
        Ok(Self {
            steps: env_count("THAW_BENCH_STEPS", 8)?,
            warmup: env_count("THAW_BENCH_WARMUP", 3)?,
            threads: env_count("THAW_BENCH_THREADS", cores())?,
            python,
        })
    }
}

/// The Python of the torch install `.ci/run` makes (`$THAW_CI_CACHE`, else
/// `~/.cache/thaw-ci`, then `venv/bin/python`).
fn ci_python() -> Option<PathBuf> {
    let cache = std::env::var_os("THAW_CI_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/thaw-ci")))?;
    Some(cache.join("venv/bin/python"))
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

fn devices() -> Vec<DeviceSpec> {
    let mut devices = vec![DeviceSpec::Flex];
    if cfg!(feature = "tch") {
        devices.push(DeviceSpec::TchCpu);
    }
    devices
}

/// Times `warmup + steps` training steps of a fresh resnet18 on `device`, as thaw's trainer
/// takes them, and returns the timed ones. The CPU backends run eagerly, so each phase's work
/// is done when its call returns.
fn thaw_steps(device: DeviceSpec, frozen: bool, config: &Config) -> Result<Phases> {
    let ad = device.to_device()?.autodiff();
    ad.seed(0);
    let shape = ModelShape {
        classes: CLASSES,
        in_channels: 3,
        image_size: IMAGE_SIZE,
    };
    let mut model = ResNet::new(ResNetShape::RESNET18, shape, &ad);
    let groups = layer_groups(ModelKind::ResNet18, &model);
    if frozen {
        for group in groups.iter().filter(|g| FROZEN.contains(&g.name.as_str())) {
            model = model.freeze_group(group.param_group());
        }
    }
    let spec = RunSpec {
        model: ModelKind::ResNet18,
        image_size: IMAGE_SIZE,
        batch_size: BATCH,
        optimizer: OptimizerKind::Adam,
        lr: 1e-3,
        device,
        ..RunSpec::default()
    };
    let mut optim = optimizer(&spec);
    // The trainer gives every group its own rate through burn's module scheduler.
    let rates: Vec<(ParamGroup, f64)> = groups.iter().map(|g| (g.param_group(), spec.lr)).collect();
    let batch = synthetic_batch();
    let mut phases = Phases::default();
    let ms = |since: Instant| since.elapsed().as_secs_f64() * 1000.0;
    for i in 0..config.warmup + config.steps {
        let batch = batch.clone();
        let start = Instant::now();
        let (images, labels) = tensors(batch, &ad);
        let (loss, _correct) = loss_and_correct(model.forward(images), labels);
        let value = loss.clone().into_scalar::<f32>();
        let forward = ms(start);
        let start = Instant::now();
        let grads = gradients(&loss, &model);
        let backward = ms(start);
        let start = Instant::now();
        model = optim.step(module_rates(&rates, spec.lr), model, grads);
        let update = ms(start);
        if !value.is_finite() {
            bail!("thaw {device}: loss {value} at step {i}");
        }
        if i >= config.warmup {
            phases.forward.push(forward);
            phases.backward.push(backward);
            phases.update.push(update);
        }
    }
    Ok(phases)
}

/// A fixed batch of pseudo-random images and labels (the data does not change the work).
fn synthetic_batch() -> Batch {
    let len = BATCH * 3 * IMAGE_SIZE * IMAGE_SIZE;
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let images = (0..len)
        .map(|_| (next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
        .collect();
    let labels = (0..BATCH)
        .map(|_| (next() % CLASSES as u64) as i64)
        .collect();
    Batch {
        images,
        labels,
        shape: [BATCH, 3, IMAGE_SIZE, IMAGE_SIZE],
    }
}

/// Runs `benches/pytorch_step.py` with the configured Python and reads its JSON line.
fn pytorch_steps(config: &Config) -> Result<PytorchReport> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/pytorch_step.py");
    let output = Command::new(&config.python)
        .arg(&script)
        .args(["--threads", &config.threads.to_string()])
        .args(["--batch", &BATCH.to_string()])
        .args(["--image-size", &IMAGE_SIZE.to_string()])
        .args(["--classes", &CLASSES.to_string()])
        .args(["--warmup", &config.warmup.to_string()])
        .args(["--steps", &config.steps.to_string()])
        .output()
        .with_context(|| format!("cannot start {}", config.python.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or("");
    if let Ok(serde_json::Value::Object(obj)) = serde_json::from_str(line)
        && let Some(error) = obj.get("error").and_then(|e| e.as_str())
    {
        bail!("{error}");
    }
    if !output.status.success() {
        bail!(
            "{} {} failed ({}): {}",
            config.python.display(),
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    serde_json::from_str(line)
        .with_context(|| format!("{} printed {line:?}, not its JSON report", script.display()))
}

fn report(timings: &[Timing], pytorch: Option<&PytorchReport>) {
    println!();
    println!(
        "| backend | trainable (ms) | stem..layer3 frozen (ms) | frozen / trainable | trainable / PyTorch's |"
    );
    println!("|---|---:|---:|---:|---:|");
    for t in timings {
        let vs = pytorch.map_or("-".to_string(), |p| {
            format!("{:.2}x", t.trainable / p.trainable_ms)
        });
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {vs} |",
            t.name,
            t.trainable,
            t.frozen,
            t.frozen / t.trainable
        );
    }
    let Some(p) = pytorch else {
        println!("\ntargets: not checked (no PyTorch reference)");
        return;
    };
    let torch_ratio = p.frozen_ms / p.trainable_ms;
    println!(
        "| PyTorch {} eager | {:.0} | {:.0} | {torch_ratio:.2} | 1.00x |",
        p.torch, p.trainable_ms, p.frozen_ms
    );
    println!("\ntargets:");
    for t in timings {
        let ratio = t.frozen / t.trainable;
        println!(
            "  {}: freezing leaves {:.0}% of the step (PyTorch: {:.0}%): {}",
            t.name,
            ratio * 100.0,
            torch_ratio * 100.0,
            verdict(ratio, torch_ratio)
        );
    }
    for t in timings.iter().filter(|t| t.is_tch) {
        let ratio = t.trainable / p.trainable_ms;
        println!(
            "  {}: trainable step {ratio:.2}x PyTorch's (target {TCH_TARGET}x): {}",
            t.name,
            verdict(ratio, TCH_TARGET)
        );
    }
    if !timings.iter().any(|t| t.is_tch) {
        println!(
            "  tch:cpu within {TCH_TARGET}x of PyTorch: not checked (build with --features tch)"
        );
    }
}

/// "met" when `value` is at most `limit`, else by how much it is over.
fn verdict(value: f64, limit: f64) -> String {
    if value <= limit {
        "met".to_string()
    } else {
        format!("MISSED by {:.1}%", (value / limit - 1.0) * 100.0)
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
