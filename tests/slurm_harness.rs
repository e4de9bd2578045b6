//! The Slurm harness itself: a real single-node cluster on loopback starts, has two GPUs,
//! runs jobs, preempts and requeues, and stops. Skips (loudly) where Slurm is not installed.

mod common;

use std::time::{Duration, Instant};

use common::slurm::{Job, Slurm};

#[test]
fn a_cluster_runs_two_gpu_jobs_at_once_and_requeues_a_preempted_job() {
    let Some(slurm) = Slurm::start() else {
        return;
    };
    let out = slurm
        .command("sinfo")
        .args(["-h", "-o", "%t"])
        .output()
        .expect("run sinfo");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "idle");

    // Two fake GPUs: two one-GPU jobs run side by side (with one, the second would wait).
    let gpu = ["--gres=gpu:1", "--wrap", "sleep 4"];
    let (a, b) = (slurm.sbatch(&gpu), slurm.sbatch(&gpu));
    let submitted = Instant::now();
    wait_both_running(&slurm, a, b, 20);
    eprintln!("both GPU jobs running after {:.1}s", secs(submitted));
    for id in [a, b] {
        slurm.wait_job(id, 30, "COMPLETED", |j| j.state == "COMPLETED");
    }
    eprintln!("both GPU jobs completed after {:.1}s", secs(submitted));

    // A `high` job needs both cores of a running `low` one, which is preempted and requeued.
    let low = slurm.sbatch(&["-p", "low", "-c", "2", "--requeue", "--wrap", "sleep 300"]);
    slurm.wait_job(low, 20, "RUNNING", |j| j.state == "RUNNING");
    let high = slurm.sbatch(&["-p", "high", "-c", "2", "--wrap", "sleep 1"]);
    let submitted = Instant::now();
    let requeued = slurm.wait_job(low, 60, "requeued", |j| j.restarts >= 1);
    eprintln!(
        "low job requeued after {:.1}s: {requeued:?}",
        secs(submitted)
    );
    slurm.wait_job(high, 60, "COMPLETED", |j| j.state == "COMPLETED");
    eprintln!("high job completed after {:.1}s", secs(submitted));
}

fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}

/// Waits until jobs `a` and `b` are RUNNING at the same moment (one `squeue`).
fn wait_both_running(slurm: &Slurm, a: u64, b: u64, secs: u64) {
    let start = Instant::now();
    loop {
        let jobs = slurm.jobs();
        let running = |id: u64| {
            jobs.iter()
                .any(|j: &Job| j.id == id && j.state == "RUNNING")
        };
        if running(a) && running(b) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "jobs {a} and {b} never ran together: {jobs:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
