//! `thaw train` as a user runs it: session files in, run directories and a summary out.

mod common;

use common::Home;
use thaw::run::RunStatus;

#[test]
fn a_tiny_session_on_demo_data_learns_well_above_chance() {
    let home = Home::new();
    let file = home.write(
        "tiny.toml",
        r#"
name = "tiny"
[defaults]
model = "resnet-mini"
data = "demo:shapes"
image_size = 32
epochs = 4
batch_size = 32
lr = 3e-3
device = "flex"
seed = 1
[[runs]]
name = "scratch"
[[runs]]
name = "frozen-stem"
freeze = ["stem"]
unfreeze_at_epoch = 2
"#,
    );
    let out = home.run_cmd(&["train", file.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("run directories in"), "{stdout}");
    for name in ["scratch", "frozen-stem"] {
        let run = home.run_dir("tiny", name);
        let state = run.read_state().unwrap();
        assert_eq!(state.status, RunStatus::Finished);
        // Ten classes: chance is 10%.
        let acc = state.best_val_accuracy.unwrap();
        assert!(acc >= 0.4, "{name}: best validation accuracy {acc}");
        // The best accuracy is the highest validation accuracy of any epoch.
        let metrics = std::fs::read_to_string(run.metrics_path()).unwrap();
        let highest = metrics
            .lines()
            .filter(|l| l.split(',').nth(2) == Some("val"))
            .map(|l| l.split(',').nth(4).unwrap().parse::<f64>().unwrap())
            .fold(0.0, f64::max);
        assert_eq!(acc, highest);
        assert!(state.val_accuracy.is_some());
        assert!(run.best().is_file());
    }
    let thawed = common::events(&home.run_dir("tiny", "frozen-stem"), "unfreeze");
    assert_eq!(thawed.len(), 1);
    // unfreeze_at_epoch = 2: thawed after two epochs, as the third starts (events say the
    // epoch being trained, 1 in the first).
    assert_eq!(thawed[0].epoch, 3);
    let validations = common::events(&home.run_dir("tiny", "frozen-stem"), "validation");
    assert!(
        validations[0].message.starts_with("epoch 1: val loss") && validations[0].epoch == 1,
        "{:?}",
        validations[0]
    );
    // Progress lines, not a live display, when stdout is not a terminal.
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("scratch") && l.contains("ep 1/4")),
        "{stdout}"
    );

    // Again: nothing left to do.
    let again = home.run_cmd(&["train", file.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("already finished"));
}

fn train_error(home: &Home, text: &str) -> String {
    let file = home.write("bad.toml", text);
    let out = home.run_cmd(&["train", file.to_str().unwrap()]);
    assert!(!out.status.success(), "{text} was accepted");
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn bad_session_files_are_refused_with_file_line_and_key() {
    let home = Home::new();
    let head = "name = \"s\"\n[defaults]\nmodel = \"mlp\"\n";
    let cases: &[(&str, &[&str])] = &[
        (
            "[[runs]]\nname = \"a\"\nepoch = 3\n",
            &["bad.toml", "line 6", "epoch", "epochs"],
        ),
        (
            "[[runs]]\nname = \"a\"\nmodel = \"resnet5\"\n",
            &[
                "line 6",
                "unknown model \"resnet5\"",
                "resnet18, resnet34, resnet50,",
            ],
        ),
        (
            "[[runs]]\nname = \"a\"\nfreeze = [\"layer3\"]\n",
            &["bad.toml:6", "freeze", "stem, hidden, head"],
        ),
        (
            "[[runs]]\nname = \"a\"\nprecision = \"fp8\"\n",
            &["bad.toml", "line 6", "precision", "f32, bf16 or f16"],
        ),
        (
            "[[runs]]\nname = \"a\"\nlr = -1.0\n",
            &["bad.toml:6", "`lr`", "positive"],
        ),
        (
            "[[runs]]\nname = \"a\"\ndevice = \"gpu7\"\n",
            &["line 6", "flex, tch:cpu, tch:cuda:N, gpu, vulkan:N, auto"],
        ),
        (
            "[[runs]]\nname = \"a\"\ndata = \"demo:nope\"\n",
            &["bad.toml:6", "`data`", "shapes"],
        ),
        (
            "[[runs]]\nname = \"a\"\nval_split = 1.5\n",
            &["bad.toml:6", "val_split"],
        ),
        (
            "[[runs]]\nname = \"a\"\nunfreeze_at_epoch = 2\n",
            &["unfreeze_at_epoch", "set freeze"],
        ),
        (
            "[[runs]]\nname = \"a\"\n[[runs]]\nname = \"a\"\n",
            &["bad.toml:7", "unique"],
        ),
        ("[[runs]]\nname = \"a b\"\n", &["bad.toml:5", "run name"]),
        (
            "[[runs]]\nname = \"a\"\nepochs = \"many\"\n",
            &["line 6", "epochs"],
        ),
        (
            "[[runs]]\nname = \"a\"\nepochs = -1\n",
            &["epochs", "expected a whole number, 0 or more"],
        ),
        ("", &["no runs"]),
        (
            "[[runs]]\nname = \"a\"\nweights = \"run:nope/best\"\n",
            &["bad.toml:6", "names no run of this session", "a"],
        ),
        (
            "[[runs]]\nname = \"a\"\nweights = \"run:a/best\"\n",
            &["bad.toml:6", "circle", "a -> a"],
        ),
        (
            "[[runs]]\nname = \"a\"\nweights = \"missing.pth\"\n",
            &["bad.toml:6", "missing.pth does not exist"],
        ),
        (
            "[[runs]]\nname = \"a\"\nweights = \".\"\n",
            &["bad.toml:6", "is a directory"],
        ),
        (
            "[[runs]]\nname = \"a\"\nweights = \"bad.toml\"\n",
            &["bad.toml:6", "extension thaw does not read", ".safetensors"],
        ),
        (
            "[[runs]]\nname = \"a\"\nmomentum = 5.0\n",
            &["bad.toml:6", "`momentum`", "[0, 1)"],
        ),
        (
            "[[runs]]\nname = \"a\"\nweight_decay = nan\n",
            &["bad.toml:6", "`weight_decay`", ">= 0"],
        ),
        (
            "[[runs]]\nname = \"a\"\nlr_step_gamma = -2.0\n",
            &["bad.toml:6", "`lr_step_gamma`", "(0, 1]"],
        ),
        (
            "[[runs]]\nname = \"a\"\ngrad_clip_norm = 0.0\n",
            &[
                "bad.toml:6",
                "`grad_clip_norm`",
                "positive number such as 1.0",
            ],
        ),
        (
            "[[runs]]\nname = \"a\"\ngrad_clip_norm = inf\n",
            &["bad.toml:6", "`grad_clip_norm`", "positive number"],
        ),
        (
            "[[runs]]\nname = \"a\"\nearly_stop_patience = 0\n",
            &["bad.toml:6", "`early_stop_patience`", "at least 1"],
        ),
        (
            "[[runs]]\nname = \"a\"\nearly_stop_patience = 2\nearly_stop_min_delta = -0.1\n",
            &["bad.toml:7", "`early_stop_min_delta`", "number >= 0"],
        ),
        (
            "[[runs]]\nname = \"a\"\nearly_stop_min_delta = 0.01\n",
            &[
                "bad.toml:6",
                "`early_stop_min_delta`",
                "early_stop_patience, which is not set",
            ],
        ),
        (
            "[[runs]]\nname = \"a\"\nimage_size = 100000\n",
            &["bad.toml:6", "`image_size`", "2048"],
        ),
        (
            "[[runs]]\nname = \"a\"\nweights = \"run:a/latest\"\n",
            &["bad.toml:6", "run:RUN/best"],
        ),
        (
            "[[runs]]\nname = \"a\"\nweights_remap = [[\"(\", \"x\"]]\n",
            &["bad.toml:6", "not a regex"],
        ),
    ];
    for (runs, expected) in cases {
        let err = train_error(&home, &format!("{head}{runs}"));
        for want in *expected {
            assert!(
                err.contains(want),
                "for {runs:?}: expected {want:?} in: {err}"
            );
        }
    }
    let err = String::from_utf8_lossy(
        &home
            .run_cmd(&["train", home.path().join("missing.toml").to_str().unwrap()])
            .stderr,
    )
    .to_string();
    assert!(
        err.contains("cannot read session file") && err.contains("missing.toml"),
        "{err}"
    );
    #[cfg(not(feature = "tch"))]
    {
        let err = train_error(
            &home,
            &format!("{head}[[runs]]\nname = \"a\"\ndevice = \"tch:cpu\"\n"),
        );
        assert!(err.contains("--features tch"), "{err}");
    }
}

#[test]
fn bad_data_fails_the_run_with_the_path_named() {
    let home = Home::new();
    let empty = home.path().join("images");
    std::fs::create_dir_all(empty.join("cats")).unwrap();
    std::fs::create_dir_all(empty.join("dogs")).unwrap();
    for (name, data) in [
        ("missing", home.path().join("nowhere")),
        ("empty", empty.clone()),
    ] {
        let text = format!(
            "name = \"{name}\"\n[defaults]\nmodel = \"mlp\"\ndata = \"{}\"\ndevice = \"flex\"\n[[runs]]\nname = \"r\"\n",
            data.display()
        );
        let file = home.write(&format!("{name}.toml"), &text);
        let out = home.run_cmd(&["train", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        let state = home.run_dir(name, "r").read_state().unwrap();
        assert_eq!(state.status, RunStatus::Failed);
        let why = state.message.unwrap();
        assert!(why.contains(data.to_str().unwrap()), "{why}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&why),
            "reason printed"
        );
        // The closing summary says it again, after all the progress lines.
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout.lines().rfind(|l| l.starts_with("r: ")).unwrap_or("");
        assert_eq!(last, format!("r: failed {why}"), "{stdout}");
    }
}

/// What the data left out is said in the run's events, not only kept in memory.
#[test]
fn skipped_files_of_an_image_folder_are_warned_about_in_the_events() {
    let home = Home::new();
    let data = home.path().join("demo");
    // Into a file: said once, naming the file.
    let file = home.write("demo.txt", "");
    let out = home.run_cmd(&["data", "demo", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("demo.txt: it is a file"), "{stderr}");
    assert_eq!(stderr.matches("it is a file").count(), 1, "{stderr}");
    let out = home.run_cmd(&["data", "demo", data.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let folder = data.join("shapes-small");
    let class = std::fs::read_dir(&folder)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(class.join("broken.png"), b"not a png").unwrap();
    std::fs::write(class.join("notes.txt"), b"labels by hand").unwrap();
    let text = format!(
        "name = \"warn\"\n[defaults]\nmodel = \"mlp\"\ndata = \"{}\"\ndevice = \"flex\"\nimage_size = 16\nepochs = 1\n[[runs]]\nname = \"r\"\n",
        folder.display()
    );
    let file = home.write("warn.toml", &text);
    let out = home.run_cmd(&["train", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let warnings: Vec<String> = common::events(&home.run_dir("warn", "r"), "warning")
        .into_iter()
        .map(|e| e.message)
        .collect();
    let said = |what: &str| warnings.iter().any(|w| w.contains(what));
    assert!(said("non-image") && said("notes.txt"), "{warnings:?}");
    assert!(said("unreadable") && said("broken.png"), "{warnings:?}");
}

/// `run:SESSION/RUN/best` is checked when the session starts, not when its run fails later.
#[test]
fn weights_from_another_session_are_checked_at_the_start() {
    let home = Home::new();
    let session = |name: &str, weights: &str| {
        format!(
            "name = \"{name}\"\n[defaults]\nmodel = \"mlp\"\ndata = \"demo:shapes-small\"\ndevice = \"flex\"\nimage_size = 16\nepochs = 1\nweights = \"{weights}\"\n[[runs]]\nname = \"a\"\n"
        )
    };
    let train = |name: &str, weights: &str| {
        let file = home.write(&format!("{name}.toml"), &session(name, weights));
        home.run_cmd(&["train", file.to_str().unwrap()])
    };
    let out = train("pre", "none");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, weights, expected) in [
        (
            "ft1",
            "run:nope/a/best",
            "there is no session \"nope\" (sessions: pre)",
        ),
        (
            "ft2",
            "run:pre/b/best",
            "session \"pre\" has no run \"b\" (its runs: a)",
        ),
        ("ft3", "run:ft3/a/best", "write run:a/best"),
    ] {
        let out = train(name, weights);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(!home.run_dir(name, "a").root.exists(), "nothing written");
    }
    let out = train("ft", "run:pre/a/best");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let weights = common::events(&home.run_dir("ft", "a"), "weights");
    assert!(
        weights[0].message.contains("run:pre/a/best"),
        "{}",
        weights[0].message
    );
}

/// In the daemon a NaN loss pauses the run for `thaw lr` and `thaw resume`; `thaw train` has
/// no one to do that, and used to wait for ever. Now that run fails, named, and the others go on.
#[test]
fn a_nan_loss_fails_that_run_of_thaw_train_and_the_others_finish() {
    let home = Home::new();
    let text = "name = \"nan\"\n[defaults]\nmodel = \"mlp\"\ndata = \"demo:shapes-small\"\ndevice = \"flex\"\nimage_size = 16\nepochs = 1\noptimizer = \"sgd\"\n[[runs]]\nname = \"boom\"\nlr = 1e30\n[[runs]]\nname = \"calm\"\n";
    let file = home.write("nan.toml", text);
    let mut child = home
        .thaw()
        .args(["train", file.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(common::wait_exit(&mut child, 120), 1, "ends, failed");
    let boom = home.run_dir("nan", "boom").read_state().unwrap();
    assert_eq!(boom.status, RunStatus::Failed);
    let why = boom.message.unwrap();
    assert!(why.contains("loss is") && why.contains("thaw lr"), "{why}");
    assert!(why.contains("lower its lr in the session file"), "{why}");
    let calm = home.run_dir("nan", "calm").read_state().unwrap();
    assert_eq!(calm.status, RunStatus::Finished);

    // As the message says: a lower rate in the file, and the same command again.
    home.write("nan.toml", &text.replace("lr = 1e30", "lr = 0.01"));
    let stdout = home.ok(&["train", file.to_str().unwrap()]);
    assert!(stdout.contains("changed: nan/boom: not trained yet, starts with the file's new settings: lr 1e30 -> 0.01"), "{stdout}");
    assert!(stdout.contains("calm: already finished"), "{stdout}");
    let boom = home.run_dir("nan", "boom").read_state().unwrap();
    assert_eq!(boom.status, RunStatus::Finished);
}

/// Editing the session file and running `thaw train` again: new runs join, a run that has not
/// trained takes any new settings, a trained one may train longer or at another rate from its
/// checkpoint, and anything else is refused with nothing written.
#[test]
fn a_changed_session_file_trains_on_what_may_change_and_refuses_the_rest() {
    let home = Home::new();
    let text = "name = \"edit\"\n[defaults]\nmodel = \"mlp\"\ndata = \"demo:shapes-small\"\ndevice = \"flex\"\nimage_size = 16\nepochs = 1\n[[runs]]\nname = \"a\"\n[[runs]]\nname = \"b\"\ndata = \"/no/such/folder\"\n";
    let file = home.write("edit.toml", text);
    let train = || home.run_cmd(&["train", file.to_str().unwrap()]);
    assert!(!train().status.success(), "b's data is not there");
    let a = home.run_dir("edit", "a");
    let first = a.read_state().unwrap();
    assert_eq!((first.status, first.epoch), (RunStatus::Finished, 1));

    let edited = text
        .replace("epochs = 1", "epochs = 2\nlr = 5e-4\nwarmup_steps = 2")
        .replace("/no/such/folder", "demo:shapes-small")
        + "[[runs]]\nname = \"c\"\n";
    home.write("edit.toml", &edited);
    let stdout = home.ok(&["train", file.to_str().unwrap()]);
    let step = first.step;
    for said in [
        format!("changed: edit/a: epochs 1 -> 2, lr 0.001 -> 0.0005, warmup_steps 0 -> 2: from its checkpoint at step {step} on"),
        "changed: edit/b: not trained yet, starts with the file's new settings: data \"/no/such/folder\" -> \"demo:shapes-small\", epochs 1 -> 2, lr 0.001 -> 0.0005, warmup_steps 0 -> 2".into(),
    ] {
        assert!(stdout.contains(&said), "{said:?} not in\n{stdout}");
    }
    for run in ["a", "b", "c"] {
        let state = home.run_dir("edit", run).read_state().unwrap();
        assert_eq!(
            (state.status, state.epoch),
            (RunStatus::Finished, 2),
            "{run}"
        );
    }
    // a went on from its checkpoint: one resume, its first epoch's rows kept.
    assert_eq!(common::events(&a, "resumed").len(), 1);
    assert_eq!(a.read_state().unwrap().step, 2 * step);

    // What a checkpoint cannot carry on with, and an epoch count below what was trained.
    let spec_before = std::fs::read_to_string(a.spec()).unwrap();
    for (change, says) in [
        (
            edited.replace("model = \"mlp\"", "model = \"resnet-mini\""),
            "changes model \"mlp\" -> \"resnet-mini\"",
        ),
        (
            edited.replace("epochs = 2", "epochs = 1"),
            "has trained 2 epochs and this session file says epochs = 1",
        ),
    ] {
        home.write("edit.toml", &change);
        let out = train();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted: {change}");
        assert!(
            stderr.contains("run edit/a has trained") && stderr.contains(says),
            "{stderr}"
        );
        assert_eq!(
            std::fs::read_to_string(a.spec()).unwrap(),
            spec_before,
            "nothing written"
        );
        let session = home.path().join("data/sessions/edit/session.toml");
        assert_eq!(std::fs::read_to_string(session).unwrap(), edited);
    }
}

/// Without a daemon, `thaw status`, `thaw logs` and `thaw remove` work on the sessions on disk:
/// status and events as the workers wrote them, a run whose worker is gone shown interrupted,
/// `logs --follow` ending with the run; remove with the same checks as the daemon's; `thaw
/// freeze` and the other controls reach a live worker. A worker killed under `thaw train` is
/// recorded failed with how it ended.
#[test]
fn without_a_daemon_status_logs_and_remove_work_on_the_runs_on_disk() {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let home = Home::new();
    let text = "name = \"off\"\n[defaults]\nmodel = \"mlp\"\ndata = \"demo:shapes-small\"\ndevice = \"flex\"\nimage_size = 16\nepochs = 1\n[[runs]]\nname = \"a\"\n[[runs]]\nname = \"b\"\nepochs = 100000\n";
    let file = home.write("off.toml", text);
    let file = file.to_str().unwrap();
    home.ok(&["train", file, "--run", "a"]);
    let train_b = || {
        home.thaw()
            .args(["train", file, "--run", "b"])
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut child = train_b();
    let b = home.run_dir("off", "b");
    let worker = common::wait_state(&b, 120, "training", |s| {
        s.status == RunStatus::Running && s.epoch >= 1
    })
    .pid;

    let out = home.run_cmd(&["status"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("no thaw daemon is running"), "{stderr}");
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in\n{stdout}"))
            .to_string()
    };
    assert!(row("off/a ").contains("finished"), "{stdout}");
    // Its epochs are five steps, each ending in a checkpoint.
    let b_row = row("off/b ");
    assert!(
        b_row.contains("running") || b_row.contains("checkpointing"),
        "{stdout}"
    );
    let json: serde_json::Value = serde_json::from_str(&home.ok(&["status", "--json"])).unwrap();
    let run_b = json
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "b")
        .unwrap();
    assert_eq!(run_b["pid"], worker, "{run_b}");
    let logs = home.ok(&["logs", "off/a"]);
    assert!(logs.lines().any(|l| l.contains(" finished ")), "{logs}");
    let mut follow = home
        .thaw()
        .args(["logs", "off/b", "--follow"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read as it comes: a full pipe would hold the follower up.
    let mut out = follow.stdout.take().unwrap();
    let followed = std::thread::spawn(move || {
        let mut text = String::new();
        out.read_to_string(&mut text).unwrap();
        text
    });

    // Controls reach a `thaw train`'s worker through its desired.json.
    let said = home.ok(&["freeze", "off/b", "hidden"]);
    assert!(
        said.contains("off/b: freezing hidden before the next step"),
        "{said}"
    );
    common::wait_state(&b, 60, "hidden frozen", |s| s.frozen == ["hidden"]);
    let said = String::from_utf8_lossy(&home.run_cmd(&["pause", "off/a"]).stderr).to_string();
    assert!(
        said.contains("no worker on this machine trains off/a: it has finished"),
        "{said}"
    );

    let refused = home.run_cmd(&["remove", "off/b"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("run off/b is trained by another worker"),
        "{stderr}"
    );
    let refused = home.run_cmd(&["remove", "nosuch"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("no run \"nosuch\": the runs are off/a, off/b"),
        "{stderr}"
    );
    let stdout = home.ok(&["remove", "a"]);
    assert!(stdout.contains("run off/a"), "{stdout}");
    assert!(!home.run_dir("off", "a").root.exists() && b.root.exists());

    // Killed under `thaw train`: failed, saying how, and the follower stops with the run.
    unsafe { libc::kill(worker as i32, libc::SIGKILL) };
    assert_eq!(common::wait_exit(&mut child, 60), 1);
    let mut said = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut said)
        .unwrap();
    let why = format!("b: failed: the worker (pid {worker}) was killed by signal 9 (SIGKILL)");
    assert!(said.contains(&why), "{said}");
    assert_eq!(b.read_state().unwrap().status, RunStatus::Failed);
    common::wait_exit(&mut follow, 30);
    let followed = followed.join().unwrap();
    assert!(
        followed.contains(" validation ") && followed.contains(&why[11..]),
        "{followed}"
    );

    // Killed with no one watching (its `thaw train` killed first): `state.json` still says
    // running; status tells the truth without writing it.
    let mut child = train_b();
    let worker = common::wait_state(&b, 120, "training again", |s| {
        s.status == RunStatus::Running && s.pid != worker
    })
    .pid;
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    common::wait_exit(&mut child, 30);
    unsafe { libc::kill(worker as i32, libc::SIGKILL) };
    let start = std::time::Instant::now();
    let mut stdout = String::new();
    while !stdout.contains("interrupted") && start.elapsed().as_secs() < 30 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        stdout = home.ok(&["status"]);
    }
    assert!(
        stdout.contains("interrupted") && stdout.contains(&format!("the worker (pid {worker}")),
        "{stdout}"
    );
    let on_disk = b.read_state().unwrap().status;
    assert!(
        matches!(on_disk, RunStatus::Running | RunStatus::Checkpointing),
        "status wrote {on_disk:?}"
    );

    let stdout = home.ok(&["remove", "--session", "off"]);
    assert!(stdout.contains("session off (1 run(s))"), "{stdout}");
    assert!(!home.path().join("data/sessions/off").exists());
}

/// `thaw stop` from another terminal stops a `thaw train`'s run at a checkpoint; the next
/// `thaw train` trains it on (the stop was for the earlier worker, not for every later one).
#[test]
fn a_run_stopped_from_another_terminal_trains_on_with_the_next_thaw_train() {
    let home = Home::new();
    let text = "name = \"st\"\n[defaults]\nmodel = \"mlp\"\ndata = \"demo:shapes-small\"\ndevice = \"flex\"\nimage_size = 16\nepochs = 100000\n[[runs]]\nname = \"r\"\n";
    let file = home.write("st.toml", text);
    let file = file.to_str().unwrap();
    let mut child = home
        .thaw()
        .args(["train", file])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let r = home.run_dir("st", "r");
    common::wait_state(&r, 120, "training", |s| s.step >= 3);
    let said = home.ok(&["stop", "st/r"]);
    assert!(said.contains("st/r: checkpointing and stopping"), "{said}");
    assert_eq!(common::wait_exit(&mut child, 60), 0);
    let stopped = r.read_state().unwrap();
    assert_eq!(stopped.status, RunStatus::Stopped);

    let epochs = stopped.epoch + 2;
    home.write(
        "st.toml",
        &text.replace("epochs = 100000", &format!("epochs = {epochs}")),
    );
    home.ok(&["train", file]);
    let state = r.read_state().unwrap();
    assert_eq!((state.status, state.epoch), (RunStatus::Finished, epochs));
}

/// `early_stop_patience`: a run finishes after that many validations without a better loss, but
/// not before its freeze schedule's last thaw (from which the count starts again). Run again,
/// it is done; given more patience, it trains on. The learning rate is too small to move the
/// weights, so every validation loss equals the first.
#[test]
fn early_stopping_ends_a_run_that_no_longer_improves_after_its_last_thaw() {
    let home = Home::new();
    let text = "name = \"es\"\n[defaults]\nmodel = \"mlp\"\ndata = \"demo:shapes-small\"\ndevice = \"flex\"\nimage_size = 16\nepochs = 10\noptimizer = \"sgd\"\nmomentum = 0\nlr = 1e-12\nearly_stop_patience = 2\n[[runs]]\nname = \"flat\"\n[[runs]]\nname = \"thawed\"\nfreeze = [\"stem\"]\nunfreeze_at_epoch = 4\n";
    let file = home.write("es.toml", text);
    let file = file.to_str().unwrap();
    home.ok(&["train", file]);
    let (flat, thawed) = (home.run_dir("es", "flat"), home.run_dir("es", "thawed"));
    let ended = |run: &thaw::run::RunDir| {
        let state = run.read_state().unwrap();
        assert_eq!(state.status, RunStatus::Finished);
        (state.epoch, state.message.unwrap_or_default())
    };
    let (epoch, message) = ended(&flat);
    assert_eq!(epoch, 3, "a best, then two validations no better");
    assert!(
        message.starts_with(
            "stopped early after epoch 3 of 10: no better validation loss in its last 2 epochs"
        ),
        "{message}"
    );
    // Stale at epoch 3 but frozen until epoch 5's thaw; two more after it.
    assert_eq!(ended(&thawed).0, 6);
    let thaw = &common::events(&thawed, "unfreeze")[0];
    assert_eq!(thaw.epoch, 5);
    let finished = &common::events(&thawed, "finished")[0];
    assert_eq!(finished.epoch, 6, "the epochs it did");

    let again = home.ok(&["train", file]);
    assert!(
        again.contains(
            "flat: already finished early (step 15); skipped (raise its early_stop_patience to train on)"
        )
            && again
                .lines()
                .any(|l| l.starts_with("flat: finished best val acc ")
                    && l.contains("%; stopped early after epoch 3 of 10")),
        "{again}"
    );
    let compared = home.ok(&["compare", "es"]);
    assert!(
        compared
            .lines()
            .any(|l| l.starts_with("flat ") && l.contains(" finished early ")),
        "{compared}"
    );
    home.write(
        "es.toml",
        &text.replace("early_stop_patience = 2", "early_stop_patience = 3"),
    );
    let more = home.ok(&["train", file]);
    assert!(
        more.contains("changed: es/flat: early_stop_patience 2 -> 3"),
        "{more}"
    );
    assert_eq!(ended(&flat).0, 4);
    assert_eq!(ended(&thawed).0, 7);
}

/// `grad_clip_norm` reaches the step: SGD with its gradients clipped to a tiny norm ends where
/// a run with every group frozen does (its starting weights, the same seed), while the same run
/// unclipped has learned. `metrics.csv` and `state.json` say how large the norm was and that
/// every step was clipped.
#[test]
fn a_run_with_its_gradients_clipped_to_a_tiny_norm_stays_at_its_starting_weights() {
    let home = Home::new();
    let file = home.write(
        "clip.toml",
        r#"name = "clip"
[defaults]
model = "mlp"
data = "demo:shapes-small"
image_size = 16
epochs = 1
batch_size = 16
optimizer = "sgd"
lr = 0.1
device = "flex"
seed = 2
[[runs]]
name = "free"
[[runs]]
name = "clipped"
grad_clip_norm = 1e-7
[[runs]]
name = "frozen"
freeze = ["stem", "hidden", "head"]
"#,
    );
    let out = home.run_cmd(&["train", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let val_loss = |run: &str| {
        home.run_dir("clip", run)
            .read_state()
            .unwrap()
            .val_loss
            .unwrap()
    };
    let (free, clipped, frozen) = (val_loss("free"), val_loss("clipped"), val_loss("frozen"));
    assert!(
        (clipped - frozen).abs() < 1e-4,
        "clipped {clipped}, frozen {frozen}"
    );
    assert!((free - frozen).abs() > 1e-2, "free {free}, frozen {frozen}");

    let rows = |run: &str| {
        let text = std::fs::read_to_string(home.run_dir("clip", run).metrics_path()).unwrap();
        let mut lines = text
            .lines()
            .map(|l| l.split(',').map(String::from).collect());
        let header: Vec<String> = lines.next().unwrap();
        assert_eq!(
            header[header.len() - 2..],
            ["grad_norm", "clipped"],
            "{run}"
        );
        lines.collect::<Vec<Vec<String>>>()
    };
    let clipped_rows = rows("clipped");
    assert!(clipped_rows.iter().any(|r| r[2] == "train"));
    for row in &clipped_rows {
        let (norm, share) = (&row[row.len() - 2], &row[row.len() - 1]);
        match row[2].as_str() {
            "train" => {
                let norm: f64 = norm.parse().unwrap();
                assert!(norm > 1e-3 && norm.is_finite(), "{row:?}");
                assert_eq!(share.parse::<f64>().unwrap(), 1.0, "{row:?}");
            }
            _ => assert_eq!((norm.as_str(), share.as_str()), ("", ""), "{row:?}"),
        }
    }
    // Not measured where nothing clips.
    for row in rows("free") {
        assert_eq!(row[row.len() - 2..], ["", ""], "{row:?}");
    }
    let state = home.run_dir("clip", "clipped").read_state().unwrap();
    let grad = state.grad_norm.expect("the last interval's norm");
    assert_eq!(grad.clipped, 1.0);
    assert!(
        home.run_dir("clip", "free")
            .read_state()
            .unwrap()
            .grad_norm
            .is_none()
    );
}

/// `early_stop_min_delta`: a validation loss counts as better for the patience only when it
/// is lower than the last that counted by more than this. A run that still improves, but by
/// less, stops; its best weights still follow the lowest loss.
#[test]
fn early_stopping_counts_only_improvements_larger_than_min_delta() {
    let home = Home::new();
    let file = home.write(
        "md.toml",
        "name = \"md\"\n[defaults]\nmodel = \"mlp\"\ndata = \"demo:shapes-small\"\ndevice = \"flex\"\nimage_size = 16\nepochs = 6\naugment = false\noptimizer = \"sgd\"\nmomentum = 0\nlr = 0.001\nseed = 3\nearly_stop_patience = 2\n[[runs]]\nname = \"any\"\n[[runs]]\nname = \"small\"\nearly_stop_min_delta = 1e-7\n[[runs]]\nname = \"large\"\nearly_stop_min_delta = 0.001\n",
    );
    home.ok(&["train", file.to_str().unwrap()]);
    let state = |run: &str| home.run_dir("md", run).read_state().unwrap();
    let val_losses = |run: &str| -> Vec<f64> {
        let text = std::fs::read_to_string(home.run_dir("md", run).metrics_path()).unwrap();
        text.lines()
            .filter(|l| l.split(',').nth(2) == Some("val"))
            .map(|l| l.split(',').nth(3).unwrap().parse().unwrap())
            .collect()
    };
    // A small rate on the same batches every epoch: the loss falls a little each epoch
    // (by about 4e-5). Without a minimum, or with one below that, it trains all its epochs.
    let any = val_losses("any");
    assert_eq!(any.len(), 6, "{any:?}");
    assert!(any.windows(2).all(|w| w[1] < w[0]), "{any:?}");
    assert_eq!(val_losses("small"), any);
    // With a minimum no epoch reaches, it stops after its first validation and two more.
    let large = state("large");
    assert_eq!((large.status, large.epoch), (RunStatus::Finished, 3));
    let message = large.message.unwrap_or_default();
    let first = val_losses("large")[0];
    assert!(
        message.starts_with(&format!(
            "stopped early after epoch 3 of 6: no validation loss more than 0.001 below {first:.4} in its last 2 epochs"
        )),
        "{message}"
    );
    // The same first epochs as `any` (same seed), and its best weights are its last epoch's:
    // the lowest loss, though not lower by enough to count for the patience.
    assert_eq!(val_losses("large"), any[..3]);
    assert!(
        (large.best_val_loss.unwrap() - any[2]).abs() < 1e-9,
        "{:?} vs {any:?}",
        large.best_val_loss
    );
}

/// A run tried on one device goes on on another from its checkpoint (with LibTorch built in,
/// flex to tch:cpu, as a CPU run would move to `tch:cuda:0`): model, BatchNorm statistics and
/// Adam's moments carry over.
#[test]
fn a_trained_run_moves_to_another_device_from_its_checkpoint() {
    let to = match cfg!(feature = "tch") {
        true => "tch:cpu",
        false => "auto",
    };
    let home = Home::new();
    let text = "name = \"mv\"\n[defaults]\nmodel = \"resnet-mini\"\ndata = \"demo:shapes-small\"\ndevice = \"flex\"\nimage_size = 16\nepochs = 1\noptimizer = \"adam\"\n[[runs]]\nname = \"a\"\n";
    let file = home.write("mv.toml", text);
    let file = file.to_str().unwrap();
    home.ok(&["train", file]);
    let a = home.run_dir("mv", "a");
    let first = a.read_state().unwrap();
    assert_eq!(first.device, "flex");

    home.write(
        "mv.toml",
        &text
            .replace("device = \"flex\"", &format!("device = \"{to}\""))
            .replace("epochs = 1", "epochs = 2"),
    );
    let stdout = home.ok(&["train", file]);
    let said = format!(
        "changed: mv/a: device \"flex\" -> \"{to}\", epochs 1 -> 2: from its checkpoint at step {} on",
        first.step
    );
    assert!(stdout.contains(&said), "{said:?} not in\n{stdout}");
    let state = a.read_state().unwrap();
    assert_eq!(
        (state.status, state.step),
        (RunStatus::Finished, 2 * first.step)
    );
    let on = match cfg!(feature = "tch") {
        true => "tch:cpu",
        false => "flex",
    };
    assert_eq!(state.device, on);
    assert_eq!(common::events(&a, "resumed").len(), 1);
    let losses = common::train_losses(&a);
    assert!(
        losses
            .iter()
            .all(|(_, l)| l.parse::<f64>().unwrap().is_finite()),
        "{losses:?}"
    );
}

#[cfg(feature = "tch")]
#[test]
fn a_session_trains_on_tch_cpu() {
    let home = Home::new();
    let file = home.write(
        "tch.toml",
        "name = \"t\"\n[defaults]\nmodel = \"resnet-mini\"\ndata = \"demo:shapes\"\nepochs = 3\ndevice = \"tch:cpu\"\nlr = 3e-3\n[[runs]]\nname = \"r\"\nfreeze = [\"stem\"]\nunfreeze_at_epoch = 1\n",
    );
    let out = home.run_cmd(&["train", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state = home.run_dir("t", "r").read_state().unwrap();
    assert_eq!(state.status, RunStatus::Finished);
    assert_eq!(state.device, "tch:cpu");
    // LibTorch learns as flex does: the loss falls and validation beats chance (10%).
    let losses = common::train_losses(&home.run_dir("t", "r"));
    let (first, last): (f64, f64) = (
        losses[0].1.parse().unwrap(),
        losses.last().unwrap().1.parse().unwrap(),
    );
    assert!(last < first, "train loss {first} -> {last}");
    assert!(
        state.best_val_accuracy.unwrap() > 0.15,
        "{:?}",
        state.best_val_accuracy
    );
    assert_eq!(common::events(&home.run_dir("t", "r"), "unfreeze").len(), 1);
}

#[test]
fn ctrl_c_checkpoints_every_run_and_the_same_command_resumes_them() {
    use std::os::unix::process::CommandExt;
    let home = Home::new();
    let file = home.write(
        "long.toml",
        "name = \"long\"\n[defaults]\nmodel = \"mlp\"\ndata = \"demo:shapes\"\nepochs = 3\nbatch_size = 8\nlog_every_steps = 1\ndevice = \"flex\"\n[[runs]]\nname = \"a\"\n[[runs]]\nname = \"b\"\nfreeze = [\"stem\"]\n",
    );
    // Its own process group, as a shell gives a foreground job: Ctrl-C reaches every process.
    let mut child = home
        .thaw()
        .args(["train", file.to_str().unwrap()])
        .process_group(0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for run in ["a", "b"] {
        common::wait_state(&home.run_dir("long", run), 120, "training", |s| s.step >= 5);
    }
    unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) };
    let code = common::wait_exit(&mut child, 120);
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert_eq!(code, 130, "{stdout}");
    assert!(
        stdout.contains("interrupted: every run checkpointed"),
        "{stdout}"
    );
    for run in ["a", "b"] {
        let dir = home.run_dir("long", run);
        let state = dir.read_state().unwrap();
        assert_eq!(state.status, RunStatus::Interrupted);
        let (_, saved) = thaw::engine::checkpoint::latest(&dir).expect("checkpoint on Ctrl-C");
        assert_eq!(saved.step, state.step);
    }
    let out = home.run_cmd(&["train", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for run in ["a", "b"] {
        let dir = home.run_dir("long", run);
        assert_eq!(dir.read_state().unwrap().status, RunStatus::Finished);
        assert_eq!(common::events(&dir, "resumed").len(), 1);
        assert_eq!(
            dir.read_state().unwrap().frozen.len(),
            usize::from(run == "b")
        );
    }
}

/// Each tensor of a `.bpk` file by name: its dtype (as `thaw weights inspect` says) and bytes.
fn tensors(
    home: &Home,
    file: &std::path::Path,
) -> std::collections::BTreeMap<String, (String, Vec<u8>)> {
    let out = home.run_cmd(&["weights", "inspect", "--json", file.to_str().unwrap()]);
    let listing: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect --json");
    let reader = burn_pack::Reader::from_file(file).expect("a burnpack");
    listing["tensors"]
        .as_array()
        .expect("tensors")
        .iter()
        .map(|t| {
            let name = t["name"].as_str().expect("name").to_string();
            let data = reader.tensor_data(&name).expect("data");
            (
                name,
                (t["dtype"].as_str().expect("dtype").to_string(), data),
            )
        })
        .collect()
}

#[test]
fn half_precision_runs_train_in_it_with_frozen_groups_held() {
    let home = Home::new();
    let mut runs = String::from("[[runs]]\nname = \"bf16\"\nprecision = \"bf16\"\n");
    runs += "[[runs]]\nname = \"f16\"\nprecision = \"f16\"\n";
    // f32 weights (as every weights file is read) into a bf16 model.
    runs +=
        "[[runs]]\nname = \"ft\"\nprecision = \"bf16\"\nweights = \"run:f16/best\"\nfreeze = []\n";
    let file = home.write(
        "half.toml",
        &format!(
            "name = \"h\"\n[defaults]\nmodel = \"resnet-mini\"\nimage_size = 16\nepochs = 2\nbatch_size = 16\ndevice = \"flex\"\ncheckpoint_every_steps = 5\nkeep_checkpoints = 10\nlog_every_steps = 1\nfreeze = [\"stem\", \"layer1\"]\n{runs}"
        ),
    );
    let out = home.run_cmd(&["train", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ft = home.run_dir("h", "ft").read_state().expect("ft ran");
    assert_eq!(ft.status, RunStatus::Finished, "{:?}", ft.message);
    for (name, dtype) in [("bf16", "bf16"), ("f16", "f16")] {
        let run = home.run_dir("h", name);
        let losses = common::train_losses(&run);
        assert!(losses.len() >= 10, "{name}: {losses:?}");
        assert!(
            losses
                .iter()
                .all(|(_, l)| l.parse::<f64>().is_ok_and(f64::is_finite)),
            "{name}: {losses:?}"
        );
        let early = tensors(&home, &run.root.join("checkpoints/step-5/model.bpk"));
        let late = tensors(&home, &run.root.join("checkpoints/step-20/model.bpk"));
        for (tensor, (kind, bytes)) in &late {
            assert_eq!(kind, dtype, "{name}: {tensor}");
            // stem is conv1/bn1, layer1 its own prefix: frozen, so held; BatchNorm statistics too.
            let frozen = tensor.starts_with("conv1.")
                || tensor.starts_with("bn1.")
                || tensor.starts_with("layer1.");
            if frozen {
                assert_eq!(bytes, &early[tensor].1, "{name}: frozen {tensor} changed");
            }
        }
        assert!(
            late.iter()
                .any(|(t, (_, b))| t.starts_with("layer3.") && b != &early[t].1),
            "{name}: the trainable groups learned nothing"
        );
    }
}

/// A run another worker trains (the daemon's) is refused up front: `thaw train` used to watch
/// that worker's progress as if it were its own, its own worker refused.
#[test]
fn a_run_another_worker_trains_is_refused_up_front() {
    let home = Home::new();
    let text = "name = \"busy\"\n[defaults]\nmodel = \"mlp\"\ndata = \"demo:shapes-small\"\ndevice = \"flex\"\nimage_size = 16\nepochs = 100000\n[[runs]]\nname = \"x\"\n";
    let runs = home.prepare_run(text);
    let mut worker = home.worker(&runs[0], 1);
    let training = common::wait_state(&runs[0], 60, "training", |s| s.step > 0);
    let file = home.write("busy.toml", text);
    let out = home.run_cmd(&["train", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "run busy/x is being trained by another worker (pid {}:",
            training.pid
        )),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("running"));
    unsafe { libc::kill(worker.id() as i32, libc::SIGTERM) };
    assert_eq!(common::wait_exit(&mut worker, 60), 75);
}
