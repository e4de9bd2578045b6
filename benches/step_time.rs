//! Training-step time of `resnet18` at 64x64, batch 32, Adam: thaw on flex (and on tch:cpu when
//! built with `--features tch`) against PyTorch eager on the same model, batch and thread count,
//! all groups trainable and with stem..layer3 frozen.
//!
//! `cargo bench --bench step_time` (`cargo bench --features tch --bench step_time` adds
//! tch:cpu). Environment: `THAW_BENCH_STEPS` (timed steps, 8), `THAW_BENCH_WARMUP` (untimed
//! steps first, 3), `THAW_BENCH_THREADS` (every backend's CPU threads, all cores),
//! `THAW_BENCH_PYTHON` (a Python with torch; default the one `.ci/run` installs, else
//! `python3`), `THAW_BENCH_DEVICE` (one device instead: `tch:cuda:0` times thaw and PyTorch on
//! that GPU), `THAW_BENCH_IMAGE_SIZE` (64) and `THAW_BENCH_BATCH` (32).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::{Module, ParamGroup};
use serde::Deserialize;
use thaw::engine::config::{OptimizerKind, TrainConfig};
use thaw::engine::data::Batch;
use thaw::engine::device::{DeviceSpec, set_cpu_threads};
use thaw::engine::model::{Classifier, ModelKind, ModelShape, ResNet, ResNetShape, layer_groups};
use thaw::engine::trainer::step::{gradients, loss_and_correct, module_rates, optimizer, tensors};

use common::{cpu_model, load_average};

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
    /// The backends timed: flex (and tch:cpu), or the one `THAW_BENCH_DEVICE` names.
    devices: Vec<DeviceSpec>,
    image_size: usize,
    batch: usize,
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
    /// The batch from host memory into the device's tensors.
    upload: Vec<f64>,
    /// Forward, loss and reading it back.
    forward: Vec<f64>,
    /// The forward's calls alone, before the first read back waits for the device: on a GPU,
    /// near `forward` means the host, issuing the work, is what the forward waits for.
    issued: Vec<f64>,
    /// Backward pass into per-parameter gradients.
    backward: Vec<f64>,
    /// The optimizer's update.
    update: Vec<f64>,
}

impl Phases {
    fn total(&self) -> f64 {
        let steps: Vec<f64> = (0..self.forward.len())
            .map(|i| self.upload[i] + self.forward[i] + self.backward[i] + self.update[i])
            .collect();
        median(&steps)
    }

    fn describe(&self) -> String {
        format!(
            "step {:.0} ms (upload {:.1}, forward {:.0} of which {:.0} issuing it, backward {:.0}, \
             update {:.0})",
            self.total(),
            median(&self.upload),
            median(&self.forward),
            median(&self.issued),
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
    upload: f64,
    forward: f64,
    backward: f64,
    update: f64,
}

impl PytorchPhases {
    fn describe(&self, step: f64) -> String {
        format!(
            "step {step:.0} ms (upload {:.1}, forward {:.0}, backward {:.0}, update {:.0})",
            self.upload, self.forward, self.backward, self.update
        )
    }
}

fn main() -> Result<()> {
    let config = Config::from_env()?;
    // rayon's global pool can be built once per process: one thread count for every backend.
    set_cpu_threads(config.threads);
    println!(
        "resnet18, {size}x{size}, batch {}, {CLASSES} classes, Adam lr 1e-3, \
         {} threads; median of {} steps after {} warm-up steps",
        config.batch,
        config.threads,
        config.steps,
        config.warmup,
        size = config.image_size
    );
    println!(
        "machine: {}, {} cores; load average at start: {}",
        cpu_model(),
        cores(),
        load_average()
    );
    let mut timings = Vec::new();
    for &device in &config.devices {
        let trainable = thaw_steps(device, false, &config)?;
        let frozen = thaw_steps(device, true, &config)?;
        println!("thaw {device}, trainable: {}", trainable.describe());
        println!("thaw {device}, frozen:    {}", frozen.describe());
        let (trainable, frozen) = (trainable.total(), frozen.total());
        timings.push(Timing {
            name: format!("thaw {device}"),
            trainable,
            frozen,
            is_tch: matches!(device, DeviceSpec::TchCpu | DeviceSpec::TchCuda(_)),
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
        let devices = match std::env::var("THAW_BENCH_DEVICE") {
            Err(_) => default_devices(),
            Ok(name) => vec![
                name.parse::<DeviceSpec>()
                    .map_err(|e| anyhow::anyhow!("THAW_BENCH_DEVICE={name:?}: {e}"))?,
            ],
        };
        Ok(Self {
            steps: env_count("THAW_BENCH_STEPS", 8)?,
            warmup: env_count("THAW_BENCH_WARMUP", 3)?,
            threads: env_count("THAW_BENCH_THREADS", cores())?,
            python,
            devices,
            image_size: env_count("THAW_BENCH_IMAGE_SIZE", 64)?,
            batch: env_count("THAW_BENCH_BATCH", 32)?,
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

fn default_devices() -> Vec<DeviceSpec> {
    let mut devices = vec![DeviceSpec::Flex];
    if cfg!(feature = "tch") {
        devices.push(DeviceSpec::TchCpu);
    }
    devices
}

/// Times `warmup + steps` training steps of a fresh resnet18 on `device`, as thaw's trainer
/// takes them, and returns the timed ones. Each phase ends by waiting for the device (a GPU
/// runs asynchronously; the CPU backends' work is done when the call returns).
fn thaw_steps(device: DeviceSpec, frozen: bool, config: &Config) -> Result<Phases> {
    let ad = device.to_device()?.autodiff();
    let sync = || ad.sync().map_err(|e| anyhow::anyhow!("{device}: {e:?}"));
    ad.seed(0);
    let shape = ModelShape {
        classes: CLASSES,
        in_channels: 3,
        image_size: config.image_size,
    };
    let mut model = ResNet::new(ResNetShape::RESNET18, shape, &ad);
    let groups = layer_groups(ModelKind::RESNET18, &model);
    if frozen {
        for group in groups.iter().filter(|g| FROZEN.contains(&g.name.as_str())) {
            model = model.freeze_group(group.param_group());
        }
    }
    let spec = TrainConfig {
        model: ModelKind::RESNET18,
        image_size: config.image_size,
        batch_size: config.batch,
        optimizer: OptimizerKind::Adam,
        lr: 1e-3,
        device,
        ..TrainConfig::default()
    };
    let mut optim = optimizer(&spec);
    // The trainer gives every group its own rate through burn's module scheduler.
    let rates: Vec<(ParamGroup, f64)> = groups.iter().map(|g| (g.param_group(), spec.lr)).collect();
    let batch = synthetic_batch(config.batch, config.image_size);
    let mut phases = Phases::default();
    let ms = |since: Instant| since.elapsed().as_secs_f64() * 1000.0;
    let sent = batch.clone();
    for i in 0..config.warmup + config.steps {
        let batch = batch.clone();
        let start = Instant::now();
        let (images, labels) = tensors(batch, &ad);
        sync()?;
        let upload = ms(start);
        if i == 0 {
            // The batch read back from the device is the batch sent (an untimed warm-up step).
            let back = images.clone().into_data().convert::<f32>();
            if back.try_to_vec::<f32>().ok().as_ref() != Some(&sent.images) {
                bail!("thaw {device}: the batch read back from the device is not the batch sent");
            }
        }
        let start = Instant::now();
        let logits = model.forward(images);
        let issued = ms(start);
        let (loss, _correct) = loss_and_correct(logits, labels);
        let value = loss.clone().into_scalar::<f32>();
        sync()?;
        let forward = ms(start);
        let start = Instant::now();
        let grads = gradients(&loss, &model);
        sync()?;
        let backward = ms(start);
        let start = Instant::now();
        model = optim.step(module_rates(&rates, spec.lr), model, grads);
        sync()?;
        let update = ms(start);
        if !value.is_finite() {
            bail!("thaw {device}: loss {value} at step {i}");
        }
        if i >= config.warmup {
            phases.upload.push(upload);
            phases.forward.push(forward);
            phases.issued.push(issued);
            phases.backward.push(backward);
            phases.update.push(update);
        }
    }
    Ok(phases)
}

/// A fixed batch of pseudo-random images and labels (the data does not change the work).
fn synthetic_batch(batch: usize, image_size: usize) -> Batch {
    let len = batch * 3 * image_size * image_size;
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
    let labels = (0..batch)
        .map(|_| (next() % CLASSES as u64) as i64)
        .collect();
    Batch {
        images,
        labels,
        shape: [batch, 3, image_size, image_size],
    }
}

/// Where PyTorch runs: on the GPU when thaw is timed on one (`tch:cuda:N` -> `cuda:N`).
fn pytorch_device(devices: &[DeviceSpec]) -> String {
    match devices {
        [DeviceSpec::TchCuda(n)] => format!("cuda:{n}"),
        _ => "cpu".to_string(),
    }
}

/// Runs `benches/pytorch_step.py` with the configured Python and reads its JSON line.
fn pytorch_steps(config: &Config) -> Result<PytorchReport> {
    // A bench binary carried to another machine (the GPU check) finds the script from where
    // it is run, the repository root, when the tree it was built in is not there.
    let built_in = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/pytorch_step.py");
    let script = match built_in.is_file() {
        true => built_in,
        false => PathBuf::from("benches/pytorch_step.py"),
    };
    let output = Command::new(&config.python)
        .arg(&script)
        .args(["--threads", &config.threads.to_string()])
        .args(["--batch", &config.batch.to_string()])
        .args(["--image-size", &config.image_size.to_string()])
        .args(["--device", &pytorch_device(&config.devices)])
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
