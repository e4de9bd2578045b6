//! Runs on the Slurm executor, against a real single-node Slurm on loopback (started and
//! stopped by `common::slurm`; skipped with a loud message where Slurm is not installed,
//! never in CI): jobs submitted and watched, control through the run directory, preemption
//! with a checkpoint and an exact resume, scancel from outside, a restarted daemon, and the
//! ways submission goes wrong.

mod common;

use std::time::Duration;

use common::daemon::{Daemon, kill};
use common::slurm::Slurm;
use common::{events, train_losses};
use thaw::protocol::RunInfo;
use thaw::run::RunStatus;

/// A daemon in a fresh home that talks to `slurm` and asks squeue twice a second.
fn daemon(slurm: &Slurm) -> Daemon {
    let mut daemon = Daemon::stopped(2);
    daemon.home.write(
        "config/config.toml",
        "cpu_slots = 2\nslurm_poll_secs = 0.5\nslurm_start_timeout_secs = 120\n",
    );
    daemon.home.env = slurm.env();
    daemon.ok(&["up"]);
    daemon
}

/// A session of ResNet-mini runs long enough to steer (about 20 steps a second on a core).
fn session(name: &str, epochs: usize, runs: &str) -> String {
    format!(
        r#"
name = "{name}"
[defaults]
image_size = 32
batch_size = 16
epochs = {epochs}
threads = 1
seed = 3
checkpoint_every_steps = 25
log_every_steps = 5
device = "flex"
{runs}
"#
    )
}

fn job_state(run: &RunInfo) -> &str {
    run.slurm.as_ref().map_or("-", |s| s.state.as_str())
}

#[test]
fn two_runs_train_as_jobs_and_are_steered_through_the_run_directory() {
    let Some(slurm) = Slurm::start() else { return };
    let daemon = daemon(&slurm);
    let runs = r#"
executor = { kind = "slurm", partition = "debug", gres = "gpu:1", time = "00:30:00" }
[[runs]]
name = "a"
[[runs]]
name = "b"
"#;
    daemon.launch("two.toml", &session("two", 200, runs));
    let mut ids = Vec::new();
    for name in ["two/a", "two/b"] {
        let run = daemon.wait_run(name, 60, "its job running and training", |r| {
            r.status == RunStatus::Running && r.step > 0 && job_state(r) == "RUNNING"
        });
        ids.push(run.slurm.expect("a Slurm job").job_id);
    }
    // Both jobs hold one of the node's two GPUs at the same time.
    for id in &ids {
        assert_eq!(slurm.job(*id).expect("squeue lists it").state, "RUNNING");
    }
    let dir = daemon.home.run_dir("two", "a");
    assert!(dir.root.join(format!("slurm-{}.log", ids[0])).is_file());
    assert_eq!(
        thaw::executor::slurm::JobRecord::read(&dir).map(|r| r.job_id),
        Some(ids[0])
    );

    // A freeze through the client reaches the worker on the node.
    daemon.ok(&["freeze", "two/a", "stem", "layer1"]);
    let run = daemon.wait_run("two/a", 60, "stem and layer1 frozen", |r| {
        r.groups
            .iter()
            .filter(|g| g.frozen)
            .map(|g| g.name.as_str())
            .eq(["stem", "layer1"])
    });
    // Caught at an epoch end, the worker may be writing its checkpoint.
    assert!(
        matches!(run.status, RunStatus::Running | RunStatus::Checkpointing),
        "{:?}",
        run.status
    );
    assert!(
        events(&dir, "freeze")
            .iter()
            .any(|e| e.groups == ["stem", "layer1"])
    );
    // Pause keeps the allocation, and says so.
    daemon.ok(&["pause", "two/b"]);
    let run = daemon.wait_run("two/b", 60, "paused", |r| r.status == RunStatus::Paused);
    assert!(
        run.message
            .unwrap_or_default()
            .contains("keeps its allocation")
    );
    assert_eq!(slurm.job(ids[1]).unwrap().state, "RUNNING");

    // Stop: the worker checkpoints, and its job ends.
    for (name, id) in ["two/a", "two/b"].iter().zip(&ids) {
        daemon.ok(&["stop", name]);
        daemon.wait_run(name, 60, "stopped", |r| r.status == RunStatus::Stopped);
        slurm.wait_job(*id, 60, "ended", |j| {
            matches!(j.state.as_str(), "COMPLETED" | "CANCELLED")
        });
    }
    let shown = daemon.ok(&["status"]);
    assert!(shown.contains(&format!("Slurm job {}", ids[0])), "{shown}");
}

#[test]
fn a_preempted_run_checkpoints_is_requeued_and_ends_with_the_uninterrupted_losses() {
    let Some(slurm) = Slurm::start() else { return };
    let daemon = daemon(&slurm);
    // `low` takes both cores, so a `high` job can only run by preempting it; `here` is the
    // same run trained locally without interruption.
    let runs = r#"
[[runs]]
name = "low"
executor = { kind = "slurm", partition = "low", extra_args = ["--cpus-per-task=2"] }
[[runs]]
name = "here"
"#;
    daemon.launch("pre.toml", &session("pre", 80, runs));
    let run = daemon.wait_run("pre/low", 60, "training on the node", |r| {
        r.status == RunStatus::Running && r.step >= 20
    });
    let id = run.slurm.expect("a Slurm job").job_id;
    let high = slurm.sbatch(&["-p", "high", "-c", "2", "--wrap", "sleep 4"]);
    slurm.wait_job(id, 120, "requeued by preemption", |j| j.restarts >= 1);
    let low = daemon.home.run_dir("pre", "low");
    let interrupted = daemon.wait_run("pre/low", 60, "queued again", |r| {
        r.status == RunStatus::Queued
            && r.queued_reason
                .as_deref()
                .is_some_and(|q| q.contains("requeued by Slurm"))
    });
    assert_eq!(interrupted.slurm.unwrap().restarts, 1);
    assert!(
        !events(&low, "interrupted").is_empty(),
        "the worker checkpointed on SIGTERM: {:?}",
        low.read_events()
    );
    slurm.wait_job(high, 120, "the high job done", |j| j.state == "COMPLETED");
    let done = daemon.wait_run("pre/low", 240, "finished after the requeue", |r| {
        r.status == RunStatus::Finished
    });
    assert_eq!(done.slurm.unwrap().job_id, id, "requeued under the same id");
    daemon.wait_run("pre/here", 240, "finished", |r| {
        r.status == RunStatus::Finished
    });
    let resumed = events(&low, "resumed");
    assert_eq!(resumed.len(), 1, "{:?}", low.read_events());
    assert!(!events(&low, "requeued").is_empty());
    // Nothing trained before the signal was lost, and nothing after it differs.
    assert_eq!(
        train_losses(&low),
        train_losses(&daemon.home.run_dir("pre", "here"))
    );
}

#[test]
fn a_run_warned_of_its_time_limit_checkpoints_requeues_itself_and_resumes() {
    let Some(slurm) = Slurm::start() else { return };
    let daemon = daemon(&slurm);
    // A 2-minute limit with a 100 s grace: Slurm sends USR1 20 s or more into the job (it
    // looks at time limits every half minute or so), long before the limit kills anything.
    let runs =
        "executor = { kind = \"slurm\", time = \"2\", grace = 100 }\n[[runs]]\nname = \"a\"\n";
    daemon.launch("lim.toml", &session("lim", 2000, runs));
    let run = daemon.wait_run("lim/a", 60, "training on the node", |r| {
        r.status == RunStatus::Running && r.step > 0
    });
    let id = run.slurm.expect("a Slurm job").job_id;
    slurm.wait_job(id, 150, "requeued by its own batch script", |j| {
        j.restarts >= 1
    });
    let dir = daemon.home.run_dir("lim", "a");
    let run = daemon.wait_run("lim/a", 120, "training again, resumed", |r| {
        r.status == RunStatus::Running && !events(&dir, "resumed").is_empty()
    });
    assert_eq!(
        run.slurm.as_ref().unwrap().job_id,
        id,
        "requeued under its id"
    );
    assert!(run.slurm.unwrap().restarts >= 1);
    // The warning, not a kill: checkpointed at a step and resumed from that very step.
    let interrupted = events(&dir, "interrupted");
    let warned = interrupted
        .first()
        .unwrap_or_else(|| panic!("no interrupted event: {:?}", dir.read_events()));
    assert!(warned.message.contains("SIGUSR1"), "{}", warned.message);
    assert_eq!(events(&dir, "resumed")[0].step, warned.step);
    let log = std::fs::read_to_string(dir.root.join(format!("slurm-{id}.log"))).unwrap();
    assert!(
        log.contains(&format!(
            "checkpointed before the time limit; requeueing job {id}"
        )),
        "{log}"
    );
    assert!(!events(&dir, "requeued").is_empty());
    daemon.ok(&["stop", "lim/a"]);
    daemon.wait_run("lim/a", 60, "stopped", |r| r.status == RunStatus::Stopped);
}

#[test]
fn scancel_from_outside_leaves_the_run_interrupted_and_resumable() {
    let Some(slurm) = Slurm::start() else { return };
    let daemon = daemon(&slurm);
    let runs = "executor = { kind = \"slurm\" }\n[[runs]]\nname = \"a\"\n";
    daemon.launch("ext.toml", &session("ext", 200, runs));
    let run = daemon.wait_run("ext/a", 60, "training", |r| r.step >= 10);
    let id = run.slurm.unwrap().job_id;
    slurm.scancel(&[&id.to_string()]);
    let run = daemon.wait_run("ext/a", 60, "interrupted", |r| {
        r.status == RunStatus::Interrupted
    });
    let message = run.message.unwrap_or_default();
    assert!(
        message.contains(&format!("Slurm job {id} was cancelled outside thaw")),
        "{message}"
    );
    assert_eq!(run.slurm.unwrap().state, "CANCELLED");
    // Resumed: a new job, from the checkpoint the worker wrote on the way out.
    let step = run.step;
    daemon.ok(&["resume", "ext/a"]);
    let run = daemon.wait_run("ext/a", 90, "training in a new job", |r| {
        r.status == RunStatus::Running && r.slurm.as_ref().is_some_and(|s| s.job_id != id)
    });
    assert!(run.step >= step.saturating_sub(25), "{} < {step}", run.step);
    daemon.ok(&["stop", "ext/a"]);
    daemon.wait_run("ext/a", 60, "stopped", |r| r.status == RunStatus::Stopped);
}

#[test]
fn a_restarted_daemon_watches_its_jobs_again() {
    let Some(slurm) = Slurm::start() else { return };
    let daemon = daemon(&slurm);
    let runs = "executor = { kind = \"slurm\" }\n[[runs]]\nname = \"a\"\n";
    daemon.launch("back.toml", &session("back", 200, runs));
    let run = daemon.wait_run("back/a", 60, "training", |r| r.step >= 5);
    let id = run.slurm.unwrap().job_id;
    // `thaw down` leaves Slurm jobs to the cluster.
    let said = daemon.ok(&["down"]);
    assert!(said.contains(&format!("back/a (job {id})")), "{said}");
    assert_eq!(slurm.job(id).unwrap().state, "RUNNING");
    daemon.ok(&["up"]);
    let before = daemon.run("back/a").step;
    let run = daemon.wait_run("back/a", 60, "advancing under the new daemon", |r| {
        r.status == RunStatus::Running && r.step > before + 5
    });
    assert_eq!(run.slurm.unwrap().job_id, id);
    // A daemon killed outright is the same.
    kill(daemon.pid(), libc::SIGKILL);
    std::thread::sleep(Duration::from_millis(300));
    daemon.ok(&["up"]);
    daemon.ok(&["freeze", "back/a", "stem"]);
    daemon.wait_run("back/a", 60, "stem frozen by the worker", |r| {
        r.groups.iter().any(|g| g.name == "stem" && g.frozen)
    });
    daemon.ok(&["stop", "back/a"]);
    daemon.wait_run("back/a", 60, "stopped", |r| r.status == RunStatus::Stopped);
    slurm.wait_job(id, 60, "ended", |j| {
        matches!(j.state.as_str(), "COMPLETED" | "CANCELLED")
    });
}

#[test]
fn refused_and_stuck_jobs_say_why_and_other_runs_go_on() {
    let Some(slurm) = Slurm::start() else { return };
    let daemon = daemon(&slurm);
    let runs = r#"
[[runs]]
name = "nowhere"
executor = { kind = "slurm", partition = "nosuch" }
[[runs]]
name = "later"
executor = { kind = "slurm", extra_args = ["--begin=now+1hour"] }
[[runs]]
name = "here"
epochs = 1
"#;
    daemon.launch("bad.toml", &session("bad", 200, runs));
    let run = daemon.wait_run("bad/nowhere", 30, "failed", |r| {
        r.status == RunStatus::Failed
    });
    let message = run.message.unwrap_or_default();
    assert!(
        message.contains("cannot submit to Slurm") && message.contains("partition"),
        "{message}"
    );
    let run = daemon.wait_run("bad/later", 30, "pending with its reason", |r| {
        job_state(r) == "PENDING"
    });
    assert_eq!(run.status, RunStatus::Queued);
    let reason = run.queued_reason.unwrap_or_default();
    assert!(reason.contains("pending (BeginTime)"), "{reason}");
    daemon.wait_run("bad/here", 120, "finished", |r| {
        r.status == RunStatus::Finished
    });
    // A pending job is withdrawn at once.
    let said = daemon.ok(&["stop", "bad/later"]);
    assert!(said.contains("cancelling Slurm job"), "{said}");
    daemon.wait_run("bad/later", 30, "stopped", |r| {
        r.status == RunStatus::Stopped
    });
    let id = daemon.run("bad/later").slurm.unwrap().job_id;
    assert_eq!(slurm.job(id).unwrap().state, "CANCELLED");
}

#[test]
fn a_run_directory_the_node_cannot_see_fails_the_run_saying_so() {
    let Some(slurm) = Slurm::start() else { return };
    let mut daemon = Daemon::stopped(2);
    daemon.home.write(
        "config/config.toml",
        "cpu_slots = 2\nslurm_poll_secs = 0.5\nslurm_start_timeout_secs = 20\n",
    );
    daemon.home.env = slurm.env();
    // The daemon keeps its data on a tmpfs in a mount namespace of its own, as on a login
    // node whose THAW_HOME is a local disk: the node (slurmd, outside the namespace) sees an
    // empty directory there.
    let data = daemon.home.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let up = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount -t tmpfs thaw "$1" && exec "$2" up"#)
        .arg("sh")
        .arg(&data)
        .arg(env!("CARGO_BIN_EXE_thaw"))
        .env("THAW_HOME", daemon.home.path())
        .envs(slurm.env())
        .output()
        .expect("run unshare");
    assert!(
        up.status.success(),
        "a daemon in a mount namespace of its own: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let runs = "executor = { kind = \"slurm\" }\n[[runs]]\nname = \"a\"\n";
    daemon.launch("ns.toml", &session("ns", 200, runs));
    assert!(
        !data.join("sessions").exists(),
        "the run directory is the daemon's alone"
    );
    let run = daemon.wait_run("ns/a", 90, "failed", |r| r.status == RunStatus::Failed);
    let message = run.message.unwrap_or_default();
    assert!(
        message.contains("is the run directory on a filesystem th") && message.contains("shares"),
        "{message}"
    );
    eprintln!("the run failed with: {message}");
    let id = run.slurm.expect("its job").job_id;
    assert!(message.contains(&format!("Slurm job {id}")), "{message}");
}

/// Needs no cluster: a daemon that cannot find sbatch fails the Slurm run with that, and
/// trains the rest.
#[test]
fn without_sbatch_the_slurm_run_fails_with_that_and_others_train() {
    let mut daemon = Daemon::stopped(2);
    daemon.home.env = vec![("PATH".into(), "/nonexistent".into())];
    daemon.ok(&["up"]);
    let runs = r#"
[[runs]]
name = "cluster"
executor = { kind = "slurm", partition = "gpu" }
[[runs]]
name = "here"
epochs = 1
"#;
    daemon.launch("nos.toml", &session("nos", 1, runs));
    let run = daemon.wait_run("nos/cluster", 30, "failed", |r| {
        r.status == RunStatus::Failed
    });
    let message = run.message.unwrap_or_default();
    assert!(
        message.contains("sbatch is not installed or not on the daemon's PATH"),
        "{message}"
    );
    daemon.wait_run("nos/here", 120, "finished", |r| {
        r.status == RunStatus::Finished
    });
}

/// Session files with a bad executor are refused before anything starts.
#[test]
fn bad_executor_settings_are_refused_at_launch() {
    let daemon = Daemon::up(1);
    for (executor, expect) in [
        ("\"slurm\"", "needs its settings"),
        (
            "{ kind = \"slurm\", time = \"8 hours\" }",
            "not a Slurm time limit",
        ),
        (
            "{ kind = \"slurm\", extra_args = [\"--output=x\"] }",
            "thaw sets --output",
        ),
        ("{ kind = \"pbs\" }", "unknown executor kind"),
        (
            "{ kind = \"slurm\", time = \"2\" }",
            "not less than the time limit",
        ),
    ] {
        let path = daemon.home.write(
            "x.toml",
            &format!("name = \"x\"\n[[runs]]\nname = \"a\"\nexecutor = {executor}\n"),
        );
        let err = daemon.fails(&["launch", path.to_str().unwrap()]);
        assert!(
            err.contains(expect) && err.contains("executor"),
            "{executor}: {err}"
        );
    }
    let path = daemon.home.write(
        "g.toml",
        "name = \"g\"\n[[runs]]\nname = \"a\"\ndevice = \"gpu\"\nexecutor = { kind = \"slurm\" }\n",
    );
    let err = daemon.fails(&["launch", path.to_str().unwrap()]);
    assert!(
        err.contains("gres = \\\"gpu:1\\\"") || err.contains("gres = \"gpu:1\""),
        "{err}"
    );
}
