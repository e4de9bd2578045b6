//! Run directories an earlier thaw wrote still load: `tests/fixtures/release-0.1.0` holds a
//! session that thaw 0.1.0 (commit 3156d5e) trained with `thaw train release.toml`: `pre` from
//! scratch, then `ft` from pre's best weights with `stem` frozen. Every reader of the run
//! directory (the catalog, the daemon's registry, `status`, `logs`, `compare`, the worker
//! resuming from a checkpoint) is tried on it.

mod common;

use std::path::Path;

use common::Home;
use thaw::run::metrics::read_rows;
use thaw::run::{Catalog, EventKind, RunStatus};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/release-0.1.0");

/// A home whose data directory holds the fixture's sessions.
fn home() -> Home {
    let home = Home::new();
    copy(
        &Path::new(FIXTURE).join("sessions"),
        &home.path().join("data/sessions"),
    );
    home
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        match entry.file_type().unwrap().is_dir() {
            true => copy(&entry.path(), &target),
            false => {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }
}

#[test]
fn every_file_of_a_release_run_directory_reads_back() {
    let home = home();
    let paths = thaw::paths::Paths {
        data: home.path().join("data"),
        config: home.path().join("config"),
        runtime: home.path().join("run"),
    };
    let catalog = Catalog::of(&paths);
    assert_eq!(catalog.runs("release"), ["pre", "ft"]);
    let (session, ft) = catalog.find("ft").unwrap();
    assert_eq!(session, "release");

    let state = ft.read_state().unwrap();
    assert_eq!(
        (state.status, state.step, state.epoch_said()),
        (RunStatus::Finished, 20, 2)
    );
    assert_eq!(state.frozen, ["stem"]);
    assert!(state.grad_norm.is_some());
    assert!(matches!(ft.read_desired(), thaw::run::DesiredRead::Good(_)));
    let kinds: Vec<EventKind> = ft.read_events().into_iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::Weights,
            EventKind::Freeze,
            EventKind::Validation,
            EventKind::Best,
            EventKind::Checkpoint,
            EventKind::Validation,
            EventKind::Best,
            EventKind::Checkpoint,
            EventKind::Finished,
        ]
    );
    let mut rows = Vec::new();
    read_rows(&ft, |row| {
        rows.push((row.step, row.split.word(), row.lrs().len(), row.grad_norm))
    });
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(rows[0].3.is_some() && rows[1].3.is_none(), "{rows:?}");
    assert_eq!(rows[0].2, 3, "a rate per group");
    assert_eq!(ft.read_classes().map(|c| c.len()), Some(5));
    assert_eq!(ft.read_nan().unwrap(), None);
    let (checkpoint, train_state) = thaw::engine::checkpoint::latest(&ft).expect("a checkpoint");
    assert!(checkpoint.ends_with("step-20"), "{}", checkpoint.display());
    assert_eq!(train_state.step, 20);
    let report: thaw::engine::weights::TransferReport =
        serde_json::from_slice(&std::fs::read(ft.transfer_path()).unwrap()).unwrap();
    assert_eq!(report.params_transferred, report.params_total);
    assert_eq!(
        ft.best_of(None, "pre"),
        Some(catalog.run("release", "pre").best())
    );
}

#[test]
fn status_logs_and_compare_read_a_release_session_without_a_daemon() {
    let home = home();
    let status: serde_json::Value = serde_json::from_str(&home.ok(&["status", "--json"])).unwrap();
    let runs = status.as_array().expect("runs");
    let names: Vec<&str> = runs.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["pre", "ft"]);
    for run in runs {
        assert_eq!(run["status"], "finished", "{run}");
        assert_eq!(run["step"], 20, "{run}");
    }
    let frozen: Vec<&str> = runs[1]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter(|g| g["frozen"] == true)
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert_eq!(frozen, ["stem"]);
    let logs = home.ok(&["logs", "release/ft"]);
    assert!(logs.contains("weights from run:pre/best"), "{logs}");
    assert!(logs.contains("froze stem"), "{logs}");
    let compare: serde_json::Value =
        serde_json::from_str(&home.ok(&["compare", "release", "--json"])).unwrap();
    let runs = compare.as_array().expect("runs");
    let best: Vec<(&str, f64, u64)> = runs
        .iter()
        .map(|r| {
            let name = r["run"].as_str().unwrap_or("?");
            let acc = r["best_val_accuracy"].as_f64().unwrap_or(-1.0);
            (name, acc, r["trainable_params"].as_u64().unwrap_or(0))
        })
        .collect();
    // `ft`'s counts come from its classes.json, less its frozen stem.
    assert_eq!(best, [("ft", 0.15, 4485), ("pre", 0.2, 5573)], "{compare}");
}

#[test]
fn a_release_run_trains_on_from_its_checkpoint_when_given_more_epochs() {
    let home = home();
    let text = std::fs::read_to_string(Path::new(FIXTURE).join("release.toml"))
        .unwrap()
        .replace("epochs = 2", "epochs = 3");
    let file = home.write("release.toml", &text);
    let out = home.ok(&["train", file.to_str().unwrap(), "--run", "ft"]);
    assert!(
        out.contains("epochs 2 -> 3: from its checkpoint at step 20 on"),
        "{out}"
    );
    let ft = home.run_dir("release", "ft");
    let state = ft.read_state().unwrap();
    assert_eq!((state.status, state.step), (RunStatus::Finished, 30));
    // The schedule thaws `stem` at the third epoch, which the release's two never reached.
    assert!(state.frozen.is_empty(), "{:?}", state.frozen);
    let events = common::events(&ft, "unfreeze");
    assert_eq!(events.len(), 1, "{events:?}");
    let resumed = common::events(&ft, "resumed");
    assert!(
        resumed.iter().any(|e| e.message.contains("step-20")),
        "{resumed:?}"
    );
    let mut steps = Vec::new();
    read_rows(&ft, |row| steps.push(row.step));
    assert_eq!(steps, [10, 10, 20, 20, 30, 30]);
}
