//! `thaw worker` driven through its run directory, as the daemon and `thaw train` drive it.

mod common;

use common::{Home, events, train_losses, wait_exit, wait_state};
use thaw::engine::model::{ModelShape, ResNet, ResNetShape, for_each_tensor};
use thaw::engine::rundir::{Desired, RunStatus};

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

fn final_checkpoint(run: &thaw::engine::rundir::RunDir) -> std::path::PathBuf {
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
    let text = session(&["straight", "broken"])
        .replace("device = \"flex\"", &format!("device = \"{device}\""));
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
    for row in metrics.lines().skip(1).filter(|l| l.contains(",train,")) {
        let speed: f64 = row.split(',').rev().nth(1).unwrap().parse().unwrap();
        // A batch of 16 small images: thousands of samples a second at most on a CPU, never millions.
        assert!(speed > 0.0 && speed < 200_000.0, "{row}");
    }
}

#[test]
fn the_time_left_counts_the_validation_passes_still_to_come() {
    let home = Home::new();
    let text = session(&[]) + "[[runs]]\nname = \"left\"\nepochs = 3\nval_split = 0.5\n";
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
    assert_eq!(wait_exit(&mut child, 300), 0);
    let done = run.read_state().unwrap();
    assert_eq!(done.secs_left, Some(0.0), "nothing left once finished");
}
