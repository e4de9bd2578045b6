//! The daemon, for real: started with `thaw up` in a private THAW_HOME, driven with the real
//! `thaw` verbs and client, killed and restarted, with real workers training.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::daemon::{Daemon, kill};
use common::{events, train_losses, wait_exit};
use thaw::client::Client;
use thaw::protocol::{
    Control, Hello, MAX_FRAME, Request, Response, RunSnapshot, Update, Welcome, read_frame,
    write_frame,
};
use thaw::run::{RunDir, RunStatus};

/// A session of small, quick MLP runs; `runs` are appended as `[[runs]]` tables.
fn session(name: &str, epochs: usize, runs: &str) -> String {
    format!(
        r#"name = "{name}"
[defaults]
model = "mlp"
data = "demo:shapes-small"
image_size = 24
epochs = {epochs}
batch_size = 16
device = "flex"
seed = 5
log_every_steps = 1
checkpoint_every_steps = 4
{runs}"#
    )
}

fn runs(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("[[runs]]\nname = \"{n}\"\n"))
        .collect()
}

impl Daemon {
    fn run_dir(&self, session: &str, run: &str) -> RunDir {
        self.home.run_dir(session, run)
    }

    /// The snapshot a new subscriber gets.
    fn snapshot(&self, session: &str) -> Vec<RunSnapshot> {
        let client = Client::connect(&self.paths()).expect("connect");
        let request = Request::Subscribe {
            session: Some(session.into()),
        };
        let mut runs = Vec::new();
        for response in client.stream(&request).expect("subscribe") {
            match response.expect("a frame") {
                Response::Snapshot { run } => runs.push(*run),
                Response::SnapshotDone { runs: n } => {
                    assert_eq!(n, runs.len());
                    return runs;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        panic!("the snapshot ended early");
    }
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
    })
}

fn wait_until(secs: u64, what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn three_runs_share_two_slots_and_a_freeze_shows_in_status_and_events() {
    let d = Daemon::up(2);
    let out = d.launch(
        "three.toml",
        &session("three", 500, &runs(&["a", "b", "c"])),
    );
    assert!(out.contains("session three launched"), "{out}");
    let c = d.run("three/c");
    assert_eq!(c.status, RunStatus::Queued, "{c:?}");
    assert!(
        c.queued_reason
            .as_deref()
            .is_some_and(|r| r.contains("CPU slot")),
        "{c:?}"
    );
    let a = d.wait_run("three/a", 120, "training", |r| {
        r.status == RunStatus::Running && r.step >= 3 && r.groups.iter().all(|g| g.params > 0)
    });
    assert!(a.pid.is_some());

    // The documented fields of `status --json`.
    let json: serde_json::Value = serde_json::from_str(&d.ok(&["status", "--json"])).unwrap();
    let first = &json.as_array().expect("an array")[0];
    for key in [
        "session",
        "name",
        "status",
        "step",
        "epoch",
        "device",
        "last_loss",
        "groups",
        "message",
        "best_val_accuracy",
        "samples_per_sec",
        "pid",
        "queued_reason",
    ] {
        assert!(
            first.get(key).is_some(),
            "status --json lacks {key}: {first}"
        );
    }
    assert_eq!(first["groups"][0]["name"], "stem");
    assert_eq!(first["groups"][0]["params"], 24 * 24 * 3 * 64 + 64);

    // Freeze through the CLI: applied before the worker's next step or so.
    let out = d.ok(&["freeze", "a", "stem"]);
    assert!(out.contains("freezing stem"), "{out}");
    let asked_at = d.run_dir("three", "a").read_state().unwrap().step;
    d.wait_run("three/a", 30, "stem frozen", |r| {
        r.groups.iter().any(|g| g.name == "stem" && g.frozen)
    });
    let freeze = events(&d.run_dir("three", "a"), "freeze");
    assert_eq!(freeze.len(), 1, "{freeze:?}");
    assert_eq!(freeze[0].groups, ["stem"]);
    assert!(
        freeze[0].step <= asked_at + 2,
        "asked at step {asked_at}, frozen at {}",
        freeze[0].step
    );
    let logs = d.ok(&["logs", "three/a"]);
    assert!(
        logs.lines()
            .any(|l| l.contains("freeze") && l.contains("[stem]")),
        "{logs}"
    );

    // Unknown runs and groups list what there is.
    let err = d.fails(&["freeze", "nosuch", "stem"]);
    assert!(err.contains("three/a, three/b, three/c"), "{err}");
    let err = d.fails(&["freeze", "a", "layer9"]);
    assert!(err.contains("stem, hidden, head"), "{err}");
    let err = d.fails(&["pause", "c"]);
    assert!(err.contains("has not started yet"), "{err}");

    // Plain text when stdout is not a terminal.
    let text = d.ok(&["status"]);
    assert!(!text.contains('\x1b'), "{text:?}");
    assert!(text.contains("three/a") && text.contains("stem"), "{text}");

    // Pause, resume, checkpoint.
    d.ok(&["pause", "three/b"]);
    d.wait_run("three/b", 30, "paused", |r| r.status == RunStatus::Paused);
    d.ok(&["checkpoint", "b"]);
    d.ok(&["resume", "b"]);
    d.wait_run("three/b", 30, "running again", |r| {
        r.status == RunStatus::Running
    });
    let b = d.run_dir("three", "b");
    wait_until(30, "a requested checkpoint", || {
        events(&b, "checkpoint")
            .iter()
            .any(|e| e.message.contains("request"))
    });

    // Stopping a frees its slot for c.
    d.ok(&["stop", "a"]);
    d.wait_run("three/a", 60, "stopped", |r| r.status == RunStatus::Stopped);
    d.wait_run("three/c", 60, "started", |r| r.status == RunStatus::Running);
}

#[test]
fn a_killed_daemon_leaves_training_alone_and_a_new_one_adopts_the_workers() {
    let d = Daemon::up(2);
    d.launch("k.toml", &session("k", 500, &runs(&["a", "b"])));
    let a = d.wait_run("k/a", 120, "training", |r| r.step >= 3);
    let b = d.wait_run("k/b", 120, "training", |r| r.step >= 3);
    let old = d.pid();
    kill(old, libc::SIGKILL);
    wait_until(10, "the daemon gone", || !alive(old));

    // Training goes on without it.
    let dir = d.run_dir("k", "a");
    let before = dir.read_state().unwrap().step;
    wait_until(60, "steps without a daemon", || {
        dir.read_state().unwrap().step >= before + 3
    });
    assert!(alive(a.pid.unwrap()) && alive(b.pid.unwrap()));

    // A new daemon replaces the stale socket and pid file and adopts both workers.
    assert!(d.home.path().join("run/thaw.sock").exists());
    d.ok(&["up"]);
    assert_ne!(d.pid(), old);
    for (name, pid) in [("k/a", a.pid), ("k/b", b.pid)] {
        let run = d.run(name);
        assert!(
            matches!(run.status, RunStatus::Running | RunStatus::Checkpointing),
            "{run:?}"
        );
        assert_eq!(run.pid, pid, "{name} adopted");
    }
    let after = dir.read_state().unwrap().step;
    d.wait_run("k/a", 60, "steps after adoption", |r| r.step >= after + 3);

    // The history goes on without a gap: every logged step from 1.
    let snapshot = d.snapshot("k");
    let a = snapshot.iter().find(|r| r.info.name == "a").unwrap();
    let steps: Vec<u64> = a.history.train_loss.iter().map(|p| p.step).collect();
    assert!(steps.len() as u64 > after as u64, "{steps:?}");
    assert_eq!(steps, (1..=steps.len() as u64).collect::<Vec<_>>());

    // After the snapshot, live updates: new metric rows go on from where it ended.
    let client = Client::connect(&d.paths()).expect("connect");
    let request = Request::Subscribe {
        session: Some("k".into()),
    };
    let mut last_seen = 0;
    for response in client.stream(&request).expect("subscribe") {
        match response.expect("a frame") {
            Response::Snapshot { run } if run.info.name == "a" => {
                last_seen = run.history.train_loss.last().map_or(0, |p| p.step);
            }
            Response::Update { update } => {
                if let Update::Metrics { run, rows, .. } = *update
                    && run == "a"
                {
                    let first = rows[0].step;
                    assert!(
                        first <= last_seen + 1 && first > 0,
                        "{first} after {last_seen}"
                    );
                    break;
                }
            }
            _ => {}
        }
    }
}

#[test]
fn after_a_reboot_runs_are_interrupted_and_resume_all_continues_them_exactly() {
    let d = Daemon::up(2);
    // resnet-mini over 12 epochs: long enough that a pause lands mid-run on any machine, even
    // one busy with other tests.
    let text = session(
        "reboot",
        12,
        &format!("freeze = [\"stem\"]\n{}", runs(&["a", "b"])),
    )
    .replace("model = \"mlp\"", "model = \"resnet-mini\"");
    d.launch("reboot.toml", &text);
    // Paused past a checkpoint, so that the kill lands mid-run whatever the machine's speed;
    // pausing changes nothing in what is learnt.
    // Each is paused as soon as it is past one, whichever gets there first: seen in its
    // state.json, which the worker writes at every logged step (`status` goes through the
    // daemon, whose view lags its workers' on a loaded machine: run b once finished unseen).
    // Asked over the socket from here: starting a `thaw pause` process takes seconds on a
    // loaded machine, in which a run could finish.
    let mut client = Client::connect(&d.paths()).expect("connect");
    let mut pause = |run: &str| {
        let request = Request::Control {
            run: format!("reboot/{run}"),
            control: Control::Pause,
        };
        match client.request(&request).expect("an answer") {
            Response::Done { .. } => {}
            other => panic!("pause {run}: {other:?}"),
        }
    };
    let start = std::time::Instant::now();
    let mut paused = [false, false];
    while !paused.iter().all(|p| *p) {
        assert!(
            start.elapsed().as_secs() < 120,
            "runs did not get past a checkpoint"
        );
        for (i, run) in ["a", "b"].iter().enumerate() {
            let step = d.run_dir("reboot", run).read_state().map_or(0, |s| s.step);
            if !paused[i] && step >= 5 {
                pause(run);
                paused[i] = true;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let mut pids = Vec::new();
    for run in ["a", "b"] {
        let info = d.wait_run(&format!("reboot/{run}"), 60, "paused", |r| {
            r.status == RunStatus::Paused
        });
        assert!(info.step < 120, "{info:?}");
        pids.push(info.pid.unwrap());
    }
    let env = std::fs::read(format!("/proc/{}/environ", pids[0])).unwrap();
    let threads: usize = env
        .split(|&b| b == 0)
        .find_map(|v| v.strip_prefix(b"THAW_THREADS="))
        .map(|v| String::from_utf8_lossy(v).parse().unwrap())
        .expect("the daemon gives workers THAW_THREADS");

    // The machine goes down: every worker and the daemon die at once.
    let daemon = d.pid();
    for pid in pids.iter().copied().chain([daemon]) {
        kill(pid, libc::SIGKILL);
    }
    wait_until(10, "all gone", || {
        !pids.iter().chain([&daemon]).any(|&p| alive(p))
    });
    let checkpointed: Vec<usize> = ["a", "b"]
        .iter()
        .map(|run| {
            thaw::engine::checkpoint::latest(&d.run_dir("reboot", run))
                .expect("a checkpoint")
                .1
                .step
        })
        .collect();

    d.ok(&["up"]);
    for (run, step) in ["a", "b"].iter().zip(&checkpointed) {
        let info = d.run(&format!("reboot/{run}"));
        assert_eq!(info.status, RunStatus::Interrupted, "{info:?}");
        let message = info.message.unwrap_or_default();
        assert!(
            message.contains(&format!("checkpoint step-{step}")),
            "{message}"
        );
    }
    let out = d.ok(&["resume", "--all"]);
    assert!(out.contains("reboot/a from checkpoint step-"), "{out}");
    for run in ["a", "b"] {
        // It was paused when the machine went down, and comes back paused.
        d.wait_run(&format!("reboot/{run}"), 120, "paused again", |r| {
            r.status == RunStatus::Paused
        });
        d.ok(&["resume", run]);
    }
    for (run, step) in ["a", "b"].iter().zip(&checkpointed) {
        d.wait_run(&format!("reboot/{run}"), 300, "finished", |r| {
            r.status == RunStatus::Finished
        });
        let dir = d.run_dir("reboot", run);
        let resumed = events(&dir, "resumed");
        assert_eq!(resumed.len(), 1, "{resumed:?}");
        assert_eq!(resumed[0].step, *step);
        assert_eq!(resumed[0].groups, ["stem"]);
        assert_eq!(dir.read_state().unwrap().frozen, ["stem"]);
    }

    // The same spec trained in one go, with the thread count the daemon gave.
    let reference = d
        .home
        .prepare_run(&text.replace("name = \"reboot\"", "name = \"ref\""));
    let mut child = d.home.worker(&reference[0], threads);
    assert_eq!(wait_exit(&mut child, 300), 0);
    let expected = train_losses(&reference[0]);
    assert_eq!(expected.len(), 120);
    for run in ["a", "b"] {
        assert_eq!(
            train_losses(&d.run_dir("reboot", run)),
            expected,
            "run {run}"
        );
    }
}

#[test]
fn a_failing_worker_is_failed_with_its_reason_and_the_other_runs_go_on() {
    let d = Daemon::up(3);
    let empty = d.home.path().join("empty-data");
    std::fs::create_dir_all(&empty).unwrap();
    let text = session(
        "f",
        2,
        &format!(
            "[[runs]]\nname = \"empty\"\ndata = \"{}\"\n[[runs]]\nname = \"victim\"\nepochs = 500\n[[runs]]\nname = \"fine\"\n",
            empty.display()
        ),
    );
    d.launch("f.toml", &text);
    let follow = d
        .home
        .thaw()
        .args(["logs", "f/fine", "--follow"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let victim = d.wait_run("f/victim", 120, "training", |r| r.step >= 2);
    kill(victim.pid.unwrap(), libc::SIGKILL);

    let empty_run = d.wait_run("f/empty", 120, "failed", |r| r.status == RunStatus::Failed);
    let why = empty_run.message.unwrap();
    assert!(why.contains(&empty.display().to_string()), "{why}");
    let victim = d.wait_run("f/victim", 60, "failed", |r| r.status == RunStatus::Failed);
    let why = victim.message.unwrap();
    assert!(
        why.contains("signal 9") && why.contains("worker.log"),
        "{why}"
    );
    assert_eq!(events(&d.run_dir("f", "victim"), "error").len(), 1);
    d.wait_run("f/fine", 180, "finished", |r| {
        r.status == RunStatus::Finished
    });
    // `logs --follow` printed the run's events as they came, and ended with the run.
    let followed = follow.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&followed.stdout);
    assert!(followed.status.success(), "{text}");
    assert!(
        text.lines().last().is_some_and(|l| l.contains("finished")),
        "{text}"
    );
    assert!(text.contains("validation"), "{text}");
    let logs = d.ok(&["logs", "f/empty"]);
    assert!(logs.contains("error"), "{logs}");
    // A failed run may be tried again from its last checkpoint.
    let out = d.ok(&["resume", "f/victim"]);
    assert!(out.contains("resuming"), "{out}");
    d.wait_run("f/victim", 60, "running again", |r| {
        r.status == RunStatus::Running
    });
}

fn raw_connection(d: &Daemon) -> UnixStream {
    let stream = UnixStream::connect(d.home.path().join("run/thaw.sock")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

fn refusal(stream: &mut UnixStream) -> String {
    let welcome: Welcome = read_frame(stream).expect("an answer");
    let why = welcome.refused.expect("refused");
    let mut rest = Vec::new();
    assert_eq!(stream.read_to_end(&mut rest).unwrap(), 0, "then closed");
    why
}

#[test]
fn garbage_oversized_frames_and_other_versions_are_refused_and_the_daemon_goes_on() {
    let d = Daemon::up(1);

    let mut s = raw_connection(&d);
    s.write_all(&5u32.to_be_bytes()).unwrap();
    s.write_all(b"\x00\x01xyz").unwrap();
    let why = refusal(&mut s);
    assert!(why.contains("not a thaw client hello"), "{why}");

    // Refused from the header alone: the body is never sent.
    let mut s = raw_connection(&d);
    s.write_all(&(MAX_FRAME + 1).to_be_bytes()).unwrap();
    let why = refusal(&mut s);
    assert!(why.contains("over the limit"), "{why}");

    let mut s = raw_connection(&d);
    let hello = Hello {
        protocol: 999,
        ..Hello::ours()
    };
    write_frame(&mut s, &hello).unwrap();
    let why = refusal(&mut s);
    assert!(why.contains("protocol") && why.contains("999"), "{why}");

    // After the handshake: garbage closes that connection only.
    let mut s = raw_connection(&d);
    write_frame(&mut s, &Hello::ours()).unwrap();
    let welcome: Welcome = read_frame(&mut s).unwrap();
    assert_eq!(welcome.refused, None);
    s.write_all(&3u32.to_be_bytes()).unwrap();
    s.write_all(b"{{{").unwrap();
    let answer: Response = read_frame(&mut s).unwrap();
    assert!(matches!(answer, Response::Error { ref message } if message.contains("malformed")));

    let out = d.ok(&["status"]);
    assert!(out.contains("no sessions"), "{out}");
}

#[test]
fn another_user_cannot_reach_the_socket_and_is_refused_by_its_uid() {
    // A tch build finds libtorch under the builder's home, which another user cannot read:
    // the uid checks are the same code in every build and are run by the default one.
    if cfg!(feature = "tch") {
        eprintln!("SKIPPED in the tch build: its binary cannot load libtorch as another user");
        return;
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: this test needs root to run a client as another uid");
        return;
    }
    let d = Daemon::up(1);
    let home = d.home.path();
    let chmod = |path: &Path, mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    chmod(home, 0o755);
    // The binary where another user may run it (a hard link where possible).
    let bin = home.join("thaw-bin");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_thaw"), &bin).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_thaw"), &bin).unwrap();
    }
    let as_nobody = || -> Output {
        use std::os::unix::process::CommandExt;
        Command::new(&bin)
            .arg("status")
            .env("THAW_HOME", home)
            .uid(65534)
            .gid(65534)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = as_nobody();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("permission denied"),
        "{err}"
    );

    // Even with the directory and socket opened up, the peer's uid is checked.
    let (run, socket) = (home.join("run"), home.join("run/thaw.sock"));
    chmod(&run, 0o755);
    chmod(&socket, 0o666);
    let out = as_nobody();
    chmod(&socket, 0o600);
    chmod(&run, 0o700);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("refused") && err.contains("uid 65534"),
        "{err}"
    );
    d.ok(&["status"]);
}

#[test]
fn a_bad_session_file_changes_nothing_and_an_existing_session_is_launched_again_or_replaced() {
    let d = Daemon::up(1);
    let bad = session("bad", 1, "[[runs]]\nname = \"x\"\nepocs = 3\n");
    let path = d.home.write("bad.toml", &bad);
    let err = d.fails(&["launch", path.to_str().unwrap()]);
    assert!(err.contains("bad.toml") && err.contains("epocs"), "{err}");
    assert!(err.contains("line"), "{err}");
    assert!(!d.home.path().join("data/sessions/bad").exists());
    assert!(d.status().is_empty());

    let good = session("once", 1, &runs(&["only"]));
    d.launch("once.toml", &good);
    d.wait_run("once/only", 120, "finished", |r| {
        r.status == RunStatus::Finished
    });
    let path = d.home.write("once.toml", &good);
    let file = path.to_str().unwrap();
    // The same file again changes nothing.
    let out = d.ok(&["launch", file]);
    assert!(
        out.contains("launched again: no new runs; no run's settings changed"),
        "{out}"
    );

    // Edited: a new run queues, and the finished one, given another epoch, trains on from its
    // checkpoint, history kept.
    let finished = d.run("once/only");
    let edited = session("once", 2, &runs(&["only", "more"]));
    d.home.write("once.toml", &edited);
    let out = d.ok(&["launch", file]);
    assert!(out.contains("new: more (queued)"), "{out}");
    assert!(
        out.contains(&format!(
            "changed: once/only: epochs 1 -> 2: from its checkpoint at step {} on (queued)",
            finished.step
        )),
        "{out}"
    );
    for run in ["once/only", "once/more"] {
        d.wait_run(run, 120, "two epochs", |r| {
            r.status == RunStatus::Finished && r.epoch == 2
        });
    }
    let only = d.run_dir("once", "only");
    assert_eq!(events(&only, "resumed").len(), 1);
    assert_eq!(d.run("once/only").step, 2 * finished.step);

    // What a checkpoint cannot carry on with is refused, and nothing changes.
    d.home.write(
        "once.toml",
        &edited.replace("model = \"mlp\"", "model = \"resnet-mini\""),
    );
    let err = d.fails(&["launch", file]);
    assert!(
        err.contains("run once/only has trained")
            && err.contains("model \"mlp\" -> \"resnet-mini\""),
        "{err}"
    );
    assert_eq!(d.run("once/only").model, "mlp");

    // A run that trains is stopped before its settings change.
    let long = edited.clone() + "[[runs]]\nname = \"long\"\nepochs = 100000\n";
    d.home.write("once.toml", &long);
    d.ok(&["launch", file]);
    d.wait_run("once/long", 120, "training", |r| {
        r.status == RunStatus::Running
    });
    d.home.write(
        "once.toml",
        &long.replace("epochs = 100000", "epochs = 100000\nlr = 0.01"),
    );
    let err = d.fails(&["launch", file]);
    assert!(
        err.contains("run once/long trains") && err.contains("thaw stop once/long"),
        "{err}"
    );
    d.ok(&["stop", "once/long"]);
    d.wait_run("once/long", 120, "stopped", |r| {
        r.status == RunStatus::Stopped
    });
    // A run the file no longer has stays, and the answer says so.
    d.home.write("once.toml", &edited);
    let out = d.ok(&["launch", file]);
    assert!(
        out.contains("not in the file, left as they are: long"),
        "{out}"
    );

    // --replace discards the session and starts it again from the file.
    d.home.write("once.toml", &good);
    let marker = d.run_dir("once", "only").root.join("old.txt");
    std::fs::write(&marker, "from the first launch").unwrap();
    let out = d.ok(&["launch", path.to_str().unwrap(), "--replace"]);
    assert!(out.contains("launched"), "{out}");
    assert!(!marker.exists(), "the old run directory was discarded");
    d.wait_run("once/only", 120, "finished again", |r| {
        r.status == RunStatus::Finished
    });
}

/// `thaw remove`: runs, or a whole session, go with their files once nothing trains them and
/// no run still to start needs their best weights; they stay gone after a restart, and the
/// session file launched again starts them afresh.
#[test]
fn removed_runs_and_sessions_go_with_their_files_and_launching_again_starts_them_afresh() {
    let d = Daemon::up(2);
    let text = session(
        "rm",
        1,
        "[[runs]]\nname = \"base\"\nepochs = 100000\n[[runs]]\nname = \"ft\"\nweights = \"run:base/best\"\n[[runs]]\nname = \"other\"\n",
    );
    let file = d.home.write("rm.toml", &text);
    let file = file.to_str().unwrap();
    d.ok(&["launch", file]);
    d.wait_run("rm/base", 120, "training", |r| {
        r.status == RunStatus::Running
    });
    let (base, ft) = (d.run_dir("rm", "base"), d.run_dir("rm", "ft"));

    // Training: refused, and nothing goes (not even the other run named).
    let err = d.fails(&["remove", "rm/other", "rm/base"]);
    assert!(
        err.contains("run rm/base is ") && err.contains("stop it first (`thaw stop rm/base`)"),
        "{err}"
    );
    assert!(base.root.exists() && d.run_dir("rm", "other").root.exists());
    // Names that are not there: what there is.
    let err = d.fails(&["remove", "nosuch"]);
    assert!(
        err.contains("no run \"nosuch\"") && err.contains("rm/base"),
        "{err}"
    );
    let err = d.fails(&["remove", "--session", "nosuch"]);
    assert!(err.contains("the sessions are rm"), "{err}");
    // (`status` of one session says the same of a name that is not there.)
    let err = d.fails(&["status", "nosuch"]);
    assert!(
        err.contains("no session \"nosuch\": the sessions are rm"),
        "{err}"
    );
    assert!(d.ok(&["status", "rm"]).contains("rm/base"));

    // Interrupted (the daemon went down), base trains no more, and ft, which starts from its
    // best weights once it has finished, waits for it: base cannot go without it.
    d.wait_run("rm/other", 120, "finished", |r| {
        r.status == RunStatus::Finished
    });
    d.ok(&["down"]);
    d.ok(&["up"]);
    assert_eq!(d.run("rm/base").status, RunStatus::Interrupted);
    let err = d.fails(&["remove", "rm/base"]);
    assert!(
        err.contains("run rm/ft starts from rm/base's best weights"),
        "{err}"
    );
    let out = d.ok(&["remove", "rm/base", "ft"]);
    assert!(
        out.contains("run rm/base") && out.contains("run rm/ft"),
        "{out}"
    );
    assert!(!base.root.exists() && !ft.root.exists());
    let names = || -> Vec<String> { d.status().iter().map(|r| r.full_name()).collect() };
    assert_eq!(names(), ["rm/other"]);
    assert!(d.fails(&["logs", "rm/base"]).contains("no run"));

    // Gone for good: a restarted daemon does not find them, and deletes what a removal left.
    d.ok(&["down"]);
    let left = d.home.path().join("data/removed/base-1-2-3");
    std::fs::create_dir_all(&left).unwrap();
    d.ok(&["up"]);
    assert_eq!(names(), ["rm/other"]);
    assert!(!left.exists());

    // The file launched again (base now one epoch) starts them afresh, ft from base's best.
    d.home
        .write("rm.toml", &text.replace("epochs = 100000", "epochs = 1"));
    let out = d.ok(&["launch", file]);
    assert!(out.contains("new: base, ft (queued)"), "{out}");
    let fresh = d.wait_run("rm/ft", 180, "finished", |r| {
        r.status == RunStatus::Finished
    });
    assert!(
        fresh
            .groups
            .iter()
            .any(|g| g.pretrained.is_some_and(|p| p > 0)),
        "{fresh:?}"
    );

    // Runs of one name in two sessions go together.
    d.launch("rm2.toml", &session("rm2", 1, &runs(&["other", "keep"])));
    d.wait_run("rm2/other", 120, "finished", |r| {
        r.status == RunStatus::Finished
    });
    d.ok(&["remove", "rm/other", "rm2/other"]);
    assert!(!d.run_dir("rm", "other").root.exists() && !d.run_dir("rm2", "other").root.exists());

    // A whole session goes, its file with it.
    let out = d.ok(&["remove", "--session", "rm"]);
    assert!(out.contains("session rm (2 run(s))"), "{out}");
    assert!(!d.home.path().join("data/sessions/rm").exists());
    let left: Vec<String> = d.status().iter().map(|r| r.full_name()).collect();
    assert_eq!(left, ["rm2/keep"]);
}

/// After an upgrade that changed the protocol, the new thaw cannot talk to the old daemon, and
/// its advice is `thaw down`: that still stops it (SIGTERM, on which a daemon stops and leaves
/// its workers training for the next one). The old daemon here is a stand-in that answers the
/// handshake as a daemon of protocol 3 refusing this client.
#[test]
fn down_stops_a_daemon_of_another_protocol() {
    use std::io::BufRead;
    let d = Daemon::stopped(1);
    let runtime = d.home.path().join("run");
    std::fs::create_dir_all(&runtime).unwrap();
    let socket = runtime.join("thaw.sock");
    let script = r#"
import json, os, socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(4)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    body = json.dumps({"protocol": 3, "version": "0.0.9", "pid": os.getpid(),
                       "refused": "this daemon speaks protocol 3"}).encode()
    c.sendall(struct.pack(">I", len(body)) + body)
    c.close()
"#;
    let mut old = Command::new("python3")
        .args(["-c", script, socket.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut ready = String::new();
    std::io::BufReader::new(old.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "ready");

    let err = d.fails(&["status"]);
    assert!(
        err.contains(&format!(
            "(pid {}) speaks protocol 3 (thaw 0.0.9)",
            old.id()
        )) && err.contains("`thaw down`, then `thaw up`"),
        "{err}"
    );
    let out = d.ok(&["down"]);
    assert!(out.contains("stopped it with SIGTERM"), "{out}");
    let stopped = old.try_wait().unwrap();
    if stopped.is_none() {
        let _ = old.kill();
    }
    assert!(stopped.is_some(), "the old daemon still runs");
}

#[test]
fn up_twice_says_it_runs_and_stale_files_of_a_killed_daemon_are_replaced() {
    let d = Daemon::up(1);
    let pid = d.pid();
    let out = d.ok(&["up"]);
    assert!(
        out.contains(&format!("already running (pid {pid})")),
        "{out}"
    );
    let out = d.ok(&["up", "--foreground"]);
    assert!(out.contains("already running"), "{out}");

    kill(pid, libc::SIGKILL);
    wait_until(10, "the daemon gone", || !alive(pid));
    let runtime = d.home.path().join("run");
    assert!(runtime.join("thaw.sock").exists() && runtime.join("thaw.pid").exists());
    // A pid file naming another live process must not fool it either.
    std::fs::write(runtime.join("thaw.pid"), "1\n").unwrap();
    let err = d.fails(&["resume", "--all"]);
    assert!(err.contains("no thaw daemon is running"), "{err}");
    let out = d.ok(&["up"]);
    assert!(out.contains("started"), "{out}");
    assert_ne!(d.pid(), pid);
    d.ok(&["status"]);
    let out = d.ok(&["down"]);
    assert!(out.contains("stopped"), "{out}");
    assert!(!runtime.join("thaw.sock").exists());
}

#[test]
fn with_auto_resume_a_restarted_daemon_resumes_interrupted_runs_by_itself() {
    let d = Daemon::up(1);
    d.launch("auto.toml", &session("auto", 500, &runs(&["a"])));
    let a = d.wait_run("auto/a", 120, "past a checkpoint", |r| r.step >= 6);
    let (worker, daemon) = (a.pid.unwrap(), d.pid());
    kill(worker, libc::SIGKILL);
    kill(daemon, libc::SIGKILL);
    wait_until(10, "both gone", || !alive(worker) && !alive(daemon));
    d.home
        .write("config/config.toml", "cpu_slots = 1\nauto_resume = true\n");
    d.ok(&["up"]);
    d.wait_run("auto/a", 60, "training again", |r| {
        r.status == RunStatus::Running && r.pid.is_some_and(|p| p != worker)
    });
    let dir = d.run_dir("auto", "a");
    wait_until(60, "resumed from its checkpoint", || {
        events(&dir, "resumed").len() == 1
    });
    assert_eq!(events(&dir, "interrupted").len(), 1);
}

#[test]
fn a_gpu_the_machine_or_build_lacks_is_refused_at_launch_naming_what_is_missing() {
    let d = Daemon::up(1);
    for device in ["gpu", "tch:cuda:0", "tch:cuda:3"] {
        let text = session("g", 1, &runs(&["a"]))
            .replace("device = \"flex\"", &format!("device = \"{device}\""));
        let file = d.home.write("g.toml", &text);
        let err = d.fails(&["launch", file.to_str().unwrap()]);
        // Built without LibTorch the session file is refused; with it, this machine has no
        // GPU (the tests run without one) and the daemon says so.
        let expected = match cfg!(feature = "tch") {
            true => "no CUDA GPU is visible to the daemon",
            false => "--features tch",
        };
        assert!(
            err.contains(expected) && err.contains(device),
            "{device}: {err}"
        );
    }
    assert!(d.status().is_empty(), "nothing was launched");
}

/// A `thaw train` started while the daemon runs: the daemon finds its session, shows it,
/// watches the worker it starts later, passes controls on, never starts its runs itself, and
/// leaves its workers training on `thaw down`. Launching the same file does not discard it.
#[test]
fn the_daemon_shows_and_steers_a_thaw_train_started_after_it_but_leaves_it_running() {
    let d = Daemon::up(2);
    let runs = "[[runs]]\nname = \"a\"\nepochs = 2\n[[runs]]\nname = \"b\"\n";
    let file = d.home.write("tt.toml", &session("tt", 500, runs));
    let mut train = train_one_at_a_time(&d, &file);
    wait_until(30, "the session found", || {
        d.status().iter().any(|r| r.session == "tt")
    });
    // b starts when a has finished and `thaw train`'s one slot is free.
    d.wait_run("tt/a", 120, "a finished", |r| {
        r.status == RunStatus::Finished
    });
    let b = d.wait_run("tt/b", 120, "b found and watched", |r| {
        r.status == RunStatus::Running && r.pid.is_some() && r.step >= 2
    });

    let said = d.ok(&["freeze", "tt/b", "stem"]);
    assert!(said.contains("freezing stem"), "{said}");
    d.wait_run("tt/b", 60, "stem frozen", |r| {
        r.groups.iter().any(|g| g.name == "stem" && g.frozen)
    });
    let said = d.ok(&["launch", file.to_str().unwrap()]);
    assert!(said.contains("no run's settings changed"), "{said}");
    assert_eq!(
        d.run("tt/b").pid,
        b.pid,
        "the same worker, its session kept"
    );

    let said = d.ok(&["down"]);
    assert!(said.contains("no run was training"), "{said}");
    let log = std::fs::read_to_string(d.home.path().join("data/daemon.log")).unwrap();
    assert!(!log.contains("started worker"), "{log}");
    let step = d.run_dir("tt", "b").read_state().unwrap().step;
    wait_until(60, "b trains on without the daemon", || {
        d.run_dir("tt", "b").read_state().unwrap().step >= step + 3
    });
    // SAFETY: kill with the process group of the thaw train this test started.
    unsafe { libc::kill(-(train.id() as i32), libc::SIGINT) };
    assert_eq!(wait_exit(&mut train, 120), 130);
}

/// A `thaw train` running when the daemon starts: its session is on disk and looks like one
/// the daemon launched, but its runs are claimed (`train.lock`), so the daemon, with a free
/// slot, starts none of them and watches the worker the `thaw train` starts later instead.
#[test]
fn a_daemon_started_during_a_thaw_train_leaves_its_queued_runs_to_it() {
    // Two slots: one for the adopted worker of a, one free for b.
    let d = Daemon::stopped(2);
    let file = d
        .home
        .write("early.toml", &session("early", 500, &runs(&["a", "b"])));
    let mut train = train_one_at_a_time(&d, &file);
    wait_until(60, "a training", || {
        d.run_dir("early", "a")
            .read_state()
            .is_ok_and(|s| s.status == RunStatus::Running && s.step >= 1)
    });
    d.ok(&["up"]);
    // Long enough for the daemon to have scheduled (it looks every 250 ms).
    std::thread::sleep(Duration::from_secs(3));
    let b = d.run("early/b");
    assert!(b.status == RunStatus::Queued && b.pid.is_none(), "{b:?}");
    let err = d.fails(&["remove", "early/b"]);
    assert!(
        err.contains("still to be trained by a `thaw train`"),
        "{err}"
    );
    let text = session("early", 500, &runs(&["a", "b"]));
    let changed = d.home.write(
        "early-lr.toml",
        &text.replace("name = \"b\"\n", "name = \"b\"\nlr = 0.0005\n"),
    );
    let err = d.fails(&["launch", changed.to_str().unwrap()]);
    assert!(
        err.contains("early/b is still to be trained by a `thaw train`"),
        "{err}"
    );
    assert!(
        !std::fs::read_to_string(d.run_dir("early", "b").spec())
            .unwrap()
            .contains("0.0005")
    );
    // a stopped through the daemon, the thaw train's slot frees and it starts b itself.
    d.ok(&["stop", "early/a"]);
    let b = d.wait_run("early/b", 120, "b started by the thaw train", |r| {
        r.status == RunStatus::Running && r.pid.is_some()
    });
    assert_eq!(
        parent(b.pid.unwrap()),
        train.id(),
        "b's worker is the thaw train's child"
    );
    // Ended in the thaw train, a is no longer claimed; b is until it ends.
    let claimed = |run| thaw::run::lock::claimed_by_train(&d.run_dir("early", run));
    assert!(!claimed("a") && claimed("b"));
    d.ok(&["stop", "early/b"]);
    assert_eq!(wait_exit(&mut train, 120), 0, "both runs stopped");
    let log = std::fs::read_to_string(d.home.path().join("data/daemon.log")).unwrap();
    assert!(!log.contains("started worker"), "{log}");
}

/// `thaw train FILE --jobs 1` in its own process group (a Ctrl-C for it alone).
fn train_one_at_a_time(d: &Daemon, file: &Path) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    d.home
        .thaw()
        .args(["train", file.to_str().unwrap(), "--jobs", "1"])
        .process_group(0)
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// A process's parent, from `/proc`.
fn parent(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(')').unwrap();
    rest.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A finished run whose file changes only what it would train with (its rate) has nothing
/// more to train: it stays finished, no worker is started for it; more epochs train it on.
#[test]
fn a_finished_run_launched_again_trains_on_only_when_given_more_epochs() {
    let d = Daemon::up(1);
    let text = session("done", 1, &runs(&["a"]));
    d.launch("done.toml", &text);
    d.wait_run("done/a", 120, "a finished", |r| {
        r.status == RunStatus::Finished
    });
    let dir = d.run_dir("done", "a");
    let file = d.home.write(
        "done.toml",
        &text.replace("seed = 5", "seed = 5\nlr = 0.0005"),
    );
    let said = d.ok(&["launch", file.to_str().unwrap()]);
    assert!(
        said.contains("lr 0.001 -> 0.0005")
            && said.contains("(not queued: already finished (step ")
            && said.contains("raise its epochs to train on)"),
        "{said}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(d.run("done/a").status, RunStatus::Finished);
    assert_eq!(events(&dir, "finished").len(), 1, "no worker started again");

    let text = text.replace("epochs = 1", "epochs = 2");
    let file = d.home.write("done.toml", &text);
    let said = d.ok(&["launch", file.to_str().unwrap()]);
    assert!(
        said.contains("epochs 1 -> 2") && said.contains("(queued)"),
        "{said}"
    );
    d.wait_run("done/a", 120, "a trained its second epoch", |r| {
        r.status == RunStatus::Finished && r.epoch == 2
    });
    assert_eq!(events(&dir, "finished").len(), 2);
}
