//! The daemon under load (not a test: it prints figures for the README).
//!
//! 1. Eight runs training on this machine's cores: how fast does `status` come back?
//! 2. Fifty synthetic run directories of 200,000 logged steps each, no workers: the daemon's
//!    resident memory, and how long a new client waits for its snapshot.
//!
//! `cargo bench --bench daemon`

mod common;

use std::io::Write;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use thaw::client::Client;
use thaw::engine::model::ModelKind;
use thaw::paths::Paths;
use thaw::protocol::{Request, Response};
use thaw::run::{RunState, RunStatus};
use thaw::session::RunSpec;

use common::{paths, thaw};

const RUNS_TRAINING: usize = 8;
const RUNS_ON_DISK: usize = 50;
const ROWS: usize = 200_000;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Milliseconds of `n` status requests (connect, handshake, request, answer), one every 20 ms.
fn status_times(paths: &Paths, n: usize) -> Vec<f64> {
    let mut times: Vec<f64> = (0..n)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(20));
            let start = Instant::now();
            let mut client = Client::connect(paths).expect("connect");
            let answer = client.request(&Request::Status).expect("status");
            assert!(matches!(answer, Response::Status { .. }));
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times
}

fn vm_rss_mb(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn training(cores: usize) {
    let home = tempfile::tempdir().expect("temp dir");
    let paths = paths(home.path());
    std::fs::create_dir_all(&paths.config).unwrap();
    std::fs::write(
        paths.config.join("config.toml"),
        format!("cpu_slots = {RUNS_TRAINING}\n"),
    )
    .unwrap();
    assert!(thaw(home.path()).arg("up").status().unwrap().success());
    let mut session = String::from(
        "name = \"load\"\n[defaults]\nmodel = \"resnet-mini\"\ndata = \"demo:shapes-small\"\nimage_size = 32\nepochs = 1000\ndevice = \"flex\"\n",
    );
    for i in 0..RUNS_TRAINING {
        session.push_str(&format!("[[runs]]\nname = \"r{i}\"\nseed = {i}\n"));
    }
    let file = home.path().join("load.toml");
    std::fs::write(&file, session).unwrap();
    assert!(
        thaw(home.path())
            .arg("launch")
            .arg(&file)
            .status()
            .unwrap()
            .success()
    );
    // Every run past its first step: the cores are as busy as they get.
    let start = Instant::now();
    loop {
        let mut client = Client::connect(&paths).expect("connect");
        if let Response::Status { runs, .. } = client.request(&Request::Status).unwrap()
            && runs
                .iter()
                .all(|r| r.status == RunStatus::Running && r.step >= 1)
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "runs never started"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let times = status_times(&paths, 200);
    println!(
        "status with {RUNS_TRAINING} runs training on {cores} cores: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (200 requests)",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times[times.len() - 1]
    );
    let _ = thaw(home.path()).arg("down").status();
}

/// Writes `RUNS_ON_DISK` finished runs of `ROWS` metric rows each, as workers would have.
fn synthetic_runs(paths: &Paths) {
    let session = thaw::run::Catalog::of(paths).session_dir("big");
    let mut toml = String::from("name = \"big\"\n[defaults]\nmodel = \"mlp\"\n");
    for i in 0..RUNS_ON_DISK {
        let name = format!("run{i:02}");
        toml.push_str(&format!("[[runs]]\nname = \"{name}\"\n"));
        let dir = session.join("runs").join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let spec = RunSpec {
            name: name.clone(),
            model: ModelKind::MLP,
            ..RunSpec::default()
        };
        std::fs::write(dir.join("spec.toml"), spec.to_toml()).unwrap();
        std::fs::write(dir.join("classes.json"), r#"["a","b","c","d","e"]"#).unwrap();
        let mut state = RunState::before_training(RunStatus::Finished, None);
        state.step = ROWS;
        std::fs::write(dir.join("state.json"), serde_json::to_vec(&state).unwrap()).unwrap();
        let mut metrics =
            std::io::BufWriter::new(std::fs::File::create(dir.join("metrics.csv")).unwrap());
        writeln!(
            metrics,
            "step,epoch,split,loss,accuracy,lr_stem,lr_hidden,lr_head,samples_per_sec,wall_time,grad_norm,clipped"
        )
        .unwrap();
        for step in 1..=ROWS {
            let loss = 2.0 / (1.0 + step as f64 / 1000.0) + (step % 7) as f64 * 0.01;
            writeln!(
                metrics,
                "{step},{},train,{loss},{},1e-3,1e-3,1e-3,1234.56,{:.3},,",
                step / 1000,
                1.0 - loss / 3.0,
                step as f64 * 0.01
            )
            .unwrap();
            if step % 1000 == 0 {
                writeln!(
                    metrics,
                    "{step},{},val,{loss},0.8,1e-3,1e-3,1e-3,999.00,0.0,,",
                    step / 1000
                )
                .unwrap();
            }
        }
        std::fs::write(
            dir.join("events.jsonl"),
            "{\"time\":1.0,\"step\":0,\"epoch\":0,\"kind\":\"finished\",\"message\":\"done\"}\n",
        )
        .unwrap();
    }
    std::fs::write(session.join("session.toml"), toml).unwrap();
}

fn memory_and_snapshot() {
    let home = tempfile::tempdir().expect("temp dir");
    let paths = paths(home.path());
    let start = Instant::now();
    synthetic_runs(&paths);
    println!(
        "wrote {RUNS_ON_DISK} runs x {ROWS} rows in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let start = Instant::now();
    let mut daemon: Child = thaw(home.path())
        .args(["up", "--foreground"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while Client::connect(&paths).is_err() {
        assert!(start.elapsed() < Duration::from_secs(300), "no daemon");
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "daemon read them all and answered after {:.2} s",
        start.elapsed().as_secs_f64()
    );
    let mut snapshot_ms = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let client = Client::connect(&paths).expect("connect");
        let mut runs = 0;
        let mut points = 0;
        for response in client
            .stream(&Request::Subscribe { session: None })
            .unwrap()
        {
            match response.unwrap() {
                Response::Snapshot { run } => {
                    runs += 1;
                    points += run.history.train_loss.len();
                }
                Response::SnapshotDone { .. } => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(runs, RUNS_ON_DISK);
        snapshot_ms.push(start.elapsed().as_secs_f64() * 1000.0);
        if snapshot_ms.len() == 1 {
            println!("snapshot: {runs} runs, {points} train-loss points in all");
        }
    }
    snapshot_ms.sort_by(f64::total_cmp);
    let times = status_times(&paths, 50);
    println!(
        "{RUNS_ON_DISK} runs x {ROWS} rows: daemon VmRSS {:.1} MB (peak VmHWM {:.1} MB); new client's snapshot p50 {:.0} ms, max {:.0} ms; status p50 {:.2} ms",
        vm_rss_mb(daemon.id(), "VmRSS:"),
        vm_rss_mb(daemon.id(), "VmHWM:"),
        percentile(&snapshot_ms, 0.5),
        snapshot_ms[snapshot_ms.len() - 1],
        percentile(&times, 0.5)
    );
    let _ = daemon.kill();
    let _ = daemon.wait();
}

fn main() {
    // `cargo bench` passes --bench; a filter names one part.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wants = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f));
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if wants("status") {
        training(cores);
    }
    if wants("memory") {
        memory_and_snapshot();
    }
}
