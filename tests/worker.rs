//! `thaw worker` driven through its run directory, as the daemon and `thaw train` drive it.

mod common;

use common::{Home, events, train_losses, wait_exit, wait_state};
use thaw::engine::model::{ModelShape, ResNet, ResNetShape, for_each_tensor};
use thaw::run::{Desired, RunStatus};

const SESSION: &str = r#"
name = "w"
[defaults]
model = "resnet-mini"
data = "demo:shapes-small"
image_size = 24
epochs = 2
batch_size = 16
device = "flex"
seed = 11
# Not every step: a run interrupted inside a logging interval must log the same row.
log_every_steps = 7
checkpoint_every_steps = 4
"#;

fn session(runs: &[&str]) -> String {
    let mut text = SESSION.to_string();
    for r in runs {
        text.push_str(&format!("[[runs]]\nname = \"{r}\"\n"));
    }
    text
}

fn weights(dir: &std::path::Path) -> Vec<(String, Vec<f32>)> {
    use burn::module::Module;
    use burn::prelude::*;
    let shape = ModelShape {
        classes: 5,
        in_channels: 3,
        image_size: 24,
    };
    let model = ResNet::new(ResNetShape::MINI, shape, &Device::flex())
        .try_load_file(dir.join("model.bpk"))
        .expect("checkpoint loads");
    let mut all = Vec::new();
    for_each_tensor(&model, |t| all.push((t.path.to_string(), t.values())));
    all
}

fn final_checkpoint(run: &thaw::run::RunDir) -> std::path::PathBuf {
    thaw::engine::checkpoint::latest(run)
        .expect("a checkpoint")
        .0
}

#[test]
fn interrupted_and_resumed_equals_never_interrupted() {
    resume_is_exact("flex");
}

#[cfg(feature = "tch")]
#[test]
fn interrupted_and_resumed_equals_never_interrupted_on_tch_cpu() {
    resume_is_exact("tch:cpu");
}

fn resume_is_exact(device: &str) {
    let home = Home::new();
    // Clipped, so that the gradient norms of the interval open at the interruption are
    // carried over as well.
    let text = session(&["straight", "broken"])
        .replace("device = \"flex\"", &format!("device = \"{device}\""))
        .replace("seed = 11\n", "seed = 11\ngrad_clip_norm = 2.0\n");
    let runs = home.prepare_run(&text);
    let (straight, broken) = (&runs[0], &runs[1]);

    let mut child = home.worker(straight, 1);
    assert_eq!(wait_exit(&mut child, 300), 0);

    // Interrupt the second run part-way (a signal, as Ctrl-C or a Slurm preemption sends),
    // then start it again from its directory.
    let mut child = home.worker(broken, 1);
    wait_state(broken, 300, "a few steps", |s| s.step >= 6);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(wait_exit(&mut child, 120), 75, "interrupted exit status");
    let state = broken.read_state().unwrap();
    assert_eq!(state.status, RunStatus::Interrupted);
    assert!(state.step < 20, "stopped part-way, at step {}", state.step);
    let mut child = home.worker(broken, 1);
    assert_eq!(wait_exit(&mut child, 300), 0);
    assert_eq!(broken.read_state().unwrap().status, RunStatus::Finished);
    assert_eq!(events(broken, "resumed").len(), 1);

    // Bit-identical on flex with the same thread count: same losses, same weights.
    assert_eq!(train_losses(straight), train_losses(broken));
    let grad_norms = |run: &thaw::run::RunDir| {
        let text = std::fs::read_to_string(run.metrics_path()).unwrap();
        let rows: Vec<String> = text
            .lines()
            .filter(|l| l.contains(",train,"))
            .map(|l| {
                // The last two columns: grad_norm, clipped.
                let fields: Vec<&str> = l.split(',').collect();
                fields[fields.len() - 2..].join(",")
            })
            .collect();
        assert!(rows.iter().all(|r| r != ","), "{rows:?}");
        rows
    };
    assert_eq!(grad_norms(straight), grad_norms(broken));
    let (a, b) = (final_checkpoint(straight), final_checkpoint(broken));
    assert_eq!(a.file_name(), b.file_name());
    let (wa, wb) = (weights(&a), weights(&b));
    let differing: Vec<(String, f32)> = wa
        .iter()
        .zip(&wb)
        .filter(|(x, y)| x != y)
        .map(|((name, x), (_, y))| {
            let max = x
                .iter()
                .zip(y)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f32::max);
            (name.clone(), max)
        })
        .collect();
    assert!(differing.is_empty(), "weights differ: {differing:?}");
}

#[test]
fn desired_state_applies_before_the_next_step_and_bad_files_are_ignored() {
    let home = Home::new();
    let runs = home.prepare_run(&session(&["ctl"]));
    let run = &runs[0];
    run.write_desired(&Desired {
        paused: true,
        ..Desired::default()
    })
    .unwrap();
    let mut child = home.worker(run, 1);
    let paused = wait_state(run, 120, "paused", |s| s.status == RunStatus::Paused);
    assert_eq!(paused.step, 0);

    // A half-written file and garbage: ignored with one event each, still paused.
    std::fs::write(run.desired_path(), br#"{"paused": fa"#).unwrap();
    wait_until(|| events(run, "warning").len() == 1);
    std::fs::write(run.desired_path(), b"\x00\x01not json").unwrap();
    wait_until(|| events(run, "warning").len() == 2);
    let warning = &events(run, "warning")[0];
    assert!(
        warning.message.contains("desired.json ignored"),
        "{}",
        warning.message
    );
    assert!(
        warning.message.contains("keeping the last good state"),
        "{}",
        warning.message
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(run.read_state().unwrap().status, RunStatus::Paused);
    assert_eq!(run.read_state().unwrap().step, 0);

    // A group that does not exist is refused the same way.
    let bad = Desired {
        frozen: Some(vec!["layer9".into()]),
        paused: true,
        ..Desired::default()
    };
    run.write_desired(&bad).unwrap();
    wait_until(|| events(run, "warning").len() == 3);
    assert!(events(run, "warning")[2].message.contains("layer9"));

    // Freeze and unpause in one write: the freeze lands before step 1.
    let want = Desired {
        frozen: Some(vec!["stem".into(), "layer1".into()]),
        ..Desired::default()
    };
    run.write_desired(&want).unwrap();
    let state = wait_state(run, 120, "training again", |s| s.step >= 2);
    assert_eq!(state.frozen, ["stem", "layer1"]);
    let freeze = &events(run, "freeze")[0];
    assert_eq!(freeze.step, 0, "applied before the first step");
    assert_eq!(freeze.groups, ["stem", "layer1"]);

    // Stop: checkpoint and exit 0.
    run.write_desired(&Desired { stop: true, ..want }).unwrap();
    assert_eq!(wait_exit(&mut child, 120), 0);
    let state = run.read_state().unwrap();
    assert_eq!(state.status, RunStatus::Stopped);
    let (_, saved) = thaw::engine::checkpoint::latest(run).expect("checkpoint on stop");
    assert_eq!(saved.step, state.step);
    assert_eq!(saved.frozen, ["stem", "layer1"]);
}

#[test]
fn a_nan_loss_pauses_the_run_and_names_the_step() {
    let home = Home::new();
    let text = session(&[])
        + "[[runs]]\nname = \"boom\"\nmodel = \"mlp\"\noptimizer = \"sgd\"\nlr = 1e30\n";
    let runs = home.prepare_run(&text);
    let run = &runs[0];
    let mut child = home.worker(run, 1);
    let state = wait_state(run, 120, "paused on NaN", |s| s.status == RunStatus::Paused);
    let nan = events(run, "nan");
    assert_eq!(nan.len(), 1);
    assert!(
        nan[0]
            .message
            .contains(&format!("at step {}", state.step + 1)),
        "{}",
        nan[0].message
    );
    assert!(state.message.unwrap_or_default().contains("loss is"));
    run.write_desired(&Desired {
        stop: true,
        ..Desired::default()
    })
    .unwrap();
    assert_eq!(wait_exit(&mut child, 60), 0);
    // Stopped, the pause's advice (lower the rate and resume, or stop) is not shown any more.
    let stopped = run.read_state().unwrap();
    assert_eq!(stopped.status, RunStatus::Stopped);
    let message = stopped.message.unwrap_or_default();
    assert!(
        message.starts_with("stopped while paused on a loss that was not finite"),
        "{message}"
    );
}

/// The weights that gave a loss that is not finite give it again at any rate: resuming with
/// a lower one goes back to the last good weights, the starting ones before any checkpoint.
#[test]
fn resuming_after_a_nan_loss_goes_back_to_the_last_good_weights() {
    let home = Home::new();
    let text = session(&[])
        + "[[runs]]\nname = \"early\"\nmodel = \"mlp\"\noptimizer = \"sgd\"\nlr = 1e30\n"
        // Long enough that the test raises its rate well before the end, however slow the machine.
        + "[[runs]]\nname = \"later\"\nmodel = \"mlp\"\noptimizer = \"sgd\"\nlr = 0.01\nepochs = 30\n";
    let runs = home.prepare_run(&text);
    let finite_rows = |run: &thaw::run::RunDir| {
        let metrics = std::fs::read_to_string(run.metrics_path()).unwrap();
        let rows: Vec<String> = metrics.lines().skip(1).map(str::to_string).collect();
        for row in &rows {
            let loss: f64 = row.split(',').nth(3).unwrap().parse().unwrap();
            assert!(loss.is_finite(), "{row}");
        }
        rows
    };
    let desired = |run: &thaw::run::RunDir| match run.read_desired() {
        thaw::run::DesiredRead::Good(d) => d,
        _ => Desired::default(),
    };
    let nan_then_resume = |run: &thaw::run::RunDir, to: &str, lr: f64| {
        let paused = wait_state(run, 120, "paused on NaN", |s| s.status == RunStatus::Paused);
        let message = paused.message.unwrap();
        assert!(
            message.contains(&format!("resuming goes back to {to}")),
            "{message}"
        );
        // What `thaw lr RUN /...` and `thaw resume RUN` write.
        let mut asked = desired(run);
        asked.lr_multiplier = lr;
        asked.resume += 1;
        run.write_desired(&asked).unwrap();
    };

    // Before any checkpoint: back to the starting weights, and on from step 0 at the lower rate.
    let early = &runs[0];
    let mut child = home.worker(early, 1);
    nan_then_resume(early, "its starting weights (no checkpoint yet)", 1e-32);
    assert_eq!(wait_exit(&mut child, 120), 0);
    assert_eq!(early.read_state().unwrap().status, RunStatus::Finished);
    let rollback = events(early, "rollback");
    assert_eq!(rollback.len(), 1);
    assert!(
        rollback[0]
            .message
            .contains("to step 0 (the starting weights"),
        "{}",
        rollback[0].message
    );
    assert!(!finite_rows(early).is_empty());

    // After checkpoints: a rate raised until the loss blows up, then lowered again.
    let later = &runs[1];
    let mut child = home.worker(later, 1);
    wait_state(later, 120, "a checkpoint", |s| s.step >= 5);
    let mut asked = desired(later);
    asked.lr_multiplier = 1e32;
    later.write_desired(&asked).unwrap();
    // A pause before the run has checkpointed past the last NaN goes further back each time:
    // the latest checkpoint may hold weights already on their way up (a huge loss, but finite).
    let mut targets: Vec<usize> = Vec::new();
    loop {
        let state = wait_state(later, 120, "paused or finished", |s| {
            matches!(s.status, RunStatus::Paused | RunStatus::Finished)
        });
        if state.status == RunStatus::Finished {
            break;
        }
        let message = state.message.unwrap();
        let step: usize = message
            .split("resuming goes back to its checkpoint at step ")
            .nth(1)
            .and_then(|rest| rest.split(':').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no checkpoint named: {message}"));
        assert!(step > 0 && step <= state.step, "{message}");
        assert!(
            targets.last().is_none_or(|&t| step < t),
            "{targets:?} then {step}"
        );
        targets.push(step);
        // Once at the rate that blew it up (it blows up again, before a checkpoint past the
        // NaN), then at the run's own.
        let mut asked = desired(later);
        asked.lr_multiplier = if targets.len() == 1 { 1e32 } else { 1.0 };
        asked.resume += 1;
        later.write_desired(&asked).unwrap();
        // Until the worker has said it goes on (its state, after the rollback's event).
        wait_state(later, 120, "the pause over", |s| {
            s.message.as_ref() != Some(&message)
        });
    }
    assert_eq!(wait_exit(&mut child, 120), 0);
    let rollback = events(later, "rollback");
    assert!(
        targets.len() >= 2 && targets.len() == rollback.len(),
        "{targets:?}"
    );
    for (event, step) in rollback.iter().zip(&targets) {
        assert!(
            event
                .message
                .contains(&format!("to step {step} (checkpoint")),
            "{}",
            event.message
        );
    }
    // The rows of the blown-up steps are gone; the run's steps count up once.
    let steps: Vec<usize> = finite_rows(later)
        .iter()
        .filter(|r| r.contains(",train,"))
        .map(|r| r.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert!(steps.windows(2).all(|w| w[0] < w[1]), "{steps:?}");
}

/// A worker that ends on a loss that was not finite (as under `thaw train`, or killed while
/// paused on it) leaves it in `nan.json`: the next worker goes back where the first would
/// have, and one checkpoint further if the loss comes back before a checkpoint past it.
#[test]
fn a_new_worker_goes_back_as_far_as_the_one_that_saw_a_nan_loss() {
    let home = Home::new();
    let text = session(&[])
        + "[[runs]]\nname = \"r\"\nmodel = \"mlp\"\noptimizer = \"sgd\"\nlr = 0.01\nepochs = 30\n";
    let run = &home.prepare_run(&text)[0];
    let fail = [(thaw::engine::trainer::FAIL_ON_NAN_ENV, "1")];
    let set_lr = |lr: f64| {
        run.write_desired(&Desired {
            lr_multiplier: lr,
            ..Desired::default()
        })
        .unwrap()
    };
    // Where the failed run's message says `thaw train` resumes it.
    let resumes_from = |state: &thaw::run::RunState| -> usize {
        assert_eq!(state.status, RunStatus::Failed);
        let message = state.message.clone().unwrap();
        message
            .split("resume it from its checkpoint at step ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no checkpoint named: {message}"))
    };

    let mut child = home.worker_with(run, 1, &fail);
    wait_state(run, 120, "two checkpoints", |s| s.step >= 9);
    set_lr(1e32);
    assert_eq!(wait_exit(&mut child, 120), 1);
    let first = resumes_from(&run.read_state().unwrap());
    let nan = run.read_nan().unwrap().expect("nan.json");
    assert!(
        nan.pending && nan.floor.is_none() && nan.step > first,
        "{nan:?}"
    );

    // Again at the rate that blew it up: the new worker goes back to that checkpoint, the
    // loss comes back before a checkpoint past it, and the next start is one further back.
    let mut child = home.worker_with(run, 1, &fail);
    assert_eq!(wait_exit(&mut child, 120), 1);
    let second = resumes_from(&run.read_state().unwrap());
    assert!(second < first, "{second} after {first}");
    let rollback = events(run, "rollback");
    assert_eq!(rollback.len(), 1);
    assert!(
        rollback[0]
            .message
            .contains(&format!("to step {first} (checkpoint"))
            && rollback[0].message.contains("by a new worker"),
        "{}",
        rollback[0].message
    );
    let nan = run.read_nan().unwrap().expect("nan.json");
    assert_eq!((nan.pending, nan.floor), (true, Some(first)));

    // At the run's own rate it goes on from there to the end; the record goes with the first
    // checkpoint past the loss.
    set_lr(1.0);
    let mut child = home.worker_with(run, 1, &fail);
    assert_eq!(wait_exit(&mut child, 120), 0);
    assert_eq!(run.read_state().unwrap().status, RunStatus::Finished);
    let rollback = events(run, "rollback");
    assert_eq!(rollback.len(), 2);
    assert!(
        rollback[1]
            .message
            .contains(&format!("to step {second} (checkpoint")),
        "{}",
        rollback[1].message
    );
    assert_eq!(run.read_nan().unwrap(), None);
    let steps: Vec<usize> = train_losses(run).iter().map(|(s, _)| *s).collect();
    assert!(steps.windows(2).all(|w| w[0] < w[1]), "{steps:?}");
}

fn wait_until(cond: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed().as_secs() < 60, "timed out");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_second_worker_on_the_same_run_is_refused_and_changes_nothing() {
    let home = Home::new();
    let runs = home.prepare_run(&session(&["one"]));
    let run = &runs[0];
    run.write_desired(&Desired {
        paused: true,
        ..Desired::default()
    })
    .unwrap();
    let mut first = home.worker(run, 1);
    let state = wait_state(run, 120, "paused", |s| s.status == RunStatus::Paused);
    assert_eq!(state.pid, first.id());
    let second = home.worker(run, 1).wait_with_output().unwrap();
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains(&format!(
            "another worker (pid {}) is already training",
            first.id()
        )),
        "{stderr}"
    );
    let after = run.read_state().unwrap();
    assert_eq!((after.pid, after.status), (first.id(), RunStatus::Paused));
    assert!(events(run, "error").is_empty());
    run.write_desired(&Desired {
        stop: true,
        ..Desired::default()
    })
    .unwrap();
    assert_eq!(wait_exit(&mut first, 60), 0);
}

#[test]
fn the_speed_of_a_logged_step_is_timed_from_its_start() {
    let home = Home::new();
    let text = session(&[]) + "[[runs]]\nname = \"fast\"\nmodel = \"mlp\"\nepochs = 1\n";
    let runs = home.prepare_run(&text);
    let mut child = home.worker(&runs[0], 1);
    assert_eq!(wait_exit(&mut child, 120), 0);
    let metrics = std::fs::read_to_string(runs[0].metrics_path()).unwrap();
    let mut lines = metrics.lines();
    let header = lines.next().unwrap().split(',');
    let at = header
        .into_iter()
        .position(|c| c == "samples_per_sec")
        .unwrap();
    for row in lines.filter(|l| l.contains(",train,")) {
        let speed: f64 = row.split(',').nth(at).unwrap().parse().unwrap();
        // A batch of 16 small images: thousands of samples a second at most on a CPU, never millions.
        assert!(speed > 0.0 && speed < 200_000.0, "{row}");
    }
}

#[test]
fn the_time_left_counts_the_validation_passes_still_to_come() {
    let home = Home::new();
    // The stem thaws at the third epoch: until then the time left is a floor.
    let text = session(&[])
        + "[[runs]]\nname = \"left\"\nepochs = 3\nval_split = 0.5\nfreeze = [\"stem\"]\nunfreeze_at_epoch = 2\n";
    let runs = home.prepare_run(&text);
    let run = &runs[0];
    let mut child = home.worker(run, 1);
    // In the second epoch, so one validation pass has been timed and two are to come.
    let state = wait_state(run, 300, "a timed step in epoch 2", |s| {
        s.status == RunStatus::Running && s.epoch == 1 && s.secs_left.is_some()
    });
    let speed = state.samples_per_sec.expect("a speed beside the time left");
    let steps_only = ((state.total_steps - state.step) * 16) as f64 / speed;
    let left = state.secs_left.unwrap();
    assert!(
        left > steps_only,
        "{left} s left is no more than the steps' {steps_only} s: {state:?}"
    );
    assert!(state.secs_left_grows, "{state:?}");
    let thawed = wait_state(run, 300, "a timed step in epoch 3", |s| {
        s.status == RunStatus::Running && s.epoch == 2 && s.frozen.is_empty()
    });
    assert!(!thawed.secs_left_grows, "{thawed:?}");
    assert_eq!(wait_exit(&mut child, 300), 0);
    let done = run.read_state().unwrap();
    assert_eq!(done.secs_left, Some(0.0), "nothing left once finished");
}
