//! Sessions on disk: `<data>/sessions/<session>/session.toml` and a directory per run.

use std::collections::BTreeSet;

use anyhow::{Context, Result, bail};

use super::{RunSpec, SessionSpec};
use crate::engine::weights::WeightsSource;
use crate::paths::Paths;
use crate::run::{Catalog, Desired, RunDir, write_atomic};

/// What a run of a changed session file may change once it has trained: its checkpoint
/// carries on with these from its step, as `thaw lr`, `thaw freeze` and a longer run would,
/// and on another device (checkpoints are backend-neutral: a run tried on the CPU goes on on a
/// GPU). Anything else (the model, the data and its split, the batch, the optimizer, the
/// precision, the seed, ...) would not fit the checkpoint, or make a different experiment of
/// this one's weights.
pub const CHANGEABLE_AFTER_TRAINING: [&str; 18] = [
    "epochs",
    "device",
    "lr",
    "group_lr",
    "lr_schedule",
    "lr_step_epochs",
    "lr_step_gamma",
    "warmup_steps",
    "grad_clip_norm",
    "freeze",
    "unfreeze_at_epoch",
    "gradual_unfreeze",
    "log_every_steps",
    "checkpoint_every_steps",
    "keep_checkpoints",
    "early_stop_patience",
    "early_stop_min_delta",
    "threads",
];

/// A session's run directories, and what a changed session file changed in them.
pub struct Prepared {
    pub runs: Vec<RunDir>,
    /// The runs whose settings changed, each with a line saying which and from when they
    /// apply.
    pub changed: Vec<(String, String)>,
}

/// Creates (or finds again) the session's directory and its runs' directories, each with its
/// `spec.toml` and a `desired.json`. A session file that changed since the session was made
/// may add runs, give a run that has not trained yet any settings, and give a run that has
/// only [`CHANGEABLE_AFTER_TRAINING`] changes; anything else is refused, naming the run and
/// the settings, before a file is written.
pub fn prepare(paths: &Paths, spec: &SessionSpec) -> Result<Prepared> {
    let catalog = Catalog::of(paths);
    let mut changed = Vec::new();
    for run in &spec.runs {
        check_other_session(&catalog, &spec.name, run)?;
        let run_dir = catalog.run(&spec.name, &run.name);
        if let Some(line) = changes(&spec.name, &run_dir, run)? {
            changed.push((run.name.clone(), line));
        }
    }
    let runs_dir = catalog.runs_dir(&spec.name);
    std::fs::create_dir_all(&runs_dir)
        .with_context(|| format!("cannot create {}", runs_dir.display()))?;
    write_atomic(&catalog.session_file(&spec.name), spec.source.as_bytes())?;
    let mut runs = Vec::new();
    for run in &spec.runs {
        let run_dir = catalog.run(&spec.name, &run.name);
        std::fs::create_dir_all(&run_dir.root)
            .with_context(|| format!("cannot create {}", run_dir.root.display()))?;
        write_atomic(&run_dir.spec(), run.to_toml().as_bytes())?;
        if !run_dir.desired_path().exists() {
            run_dir.write_desired(&Desired::default())?;
        }
        runs.push(run_dir);
    }
    Ok(Prepared { runs, changed })
}

/// How `run` differs from the settings its directory already holds: `None` when it is new or
/// the same, a line saying what changed when that may change, an error when it may not.
fn changes(session: &str, dir: &RunDir, run: &RunSpec) -> Result<Option<String>> {
    let Ok(text) = std::fs::read_to_string(dir.spec()) else {
        return Ok(None);
    };
    let table = |text: &str| toml::from_str::<toml::Table>(text).unwrap_or_default();
    let (old, new) = (table(&text), table(&run.to_toml()));
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let shown = |v: Option<&toml::Value>| match v {
        None => "(unset)".to_string(),
        Some(toml::Value::Float(f)) => crate::number::plain(*f),
        Some(v) => v.to_string(),
    };
    let diff: Vec<(&str, String)> = keys
        .into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| {
            let line = format!("{k} {} -> {}", shown(old.get(k)), shown(new.get(k)));
            (k.as_str(), line)
        })
        .collect();
    if diff.is_empty() {
        return Ok(None);
    }
    let said: Vec<&str> = diff.iter().map(|(_, line)| line.as_str()).collect();
    let said = said.join(", ");
    let name = format!("{session}/{}", run.name);
    if let Some(pid) = crate::run::lock::training(dir) {
        bail!(
            "run {name} is training (worker pid {pid}) and this session file changes it ({said}): stop it first (`thaw stop {name}`, or Ctrl-C its `thaw train`)"
        );
    }
    let Some((_, saved)) = crate::engine::checkpoint::resume_point(dir) else {
        return Ok(Some(format!(
            "{name}: not trained yet, starts with the file's new settings: {said}"
        )));
    };
    let fixed: Vec<&str> = diff
        .iter()
        .filter(|(k, _)| !CHANGEABLE_AFTER_TRAINING.contains(k))
        .map(|(_, line)| line.as_str())
        .collect();
    if !fixed.is_empty() {
        bail!(
            "run {name} has trained {} steps (its checkpoint is in {}) and this session file changes {}: a run that has trained may change only {}; give the changed run another name (it starts afresh, or from weights = \"run:{}/best\"), or remove the run (`thaw remove {name}`, which deletes {}) to train it again from the start",
            saved.step,
            dir.checkpoints().display(),
            fixed.join(", "),
            CHANGEABLE_AFTER_TRAINING.join(", "),
            run.name,
            dir.root.display()
        );
    }
    if run.epochs < saved.epoch {
        bail!(
            "run {name} has trained {} epochs and this session file says epochs = {}: it cannot be made shorter than it has trained; say at least {}",
            saved.epoch,
            run.epochs,
            saved.epoch
        );
    }
    Ok(Some(format!(
        "{name}: {said}: from its checkpoint at step {} on",
        saved.step
    )))
}

/// A run that starts from another session's run (`run:SESSION/RUN/best`) needs that run's
/// best weights now: nothing waits across sessions, so without them it could only fail later.
fn check_other_session(catalog: &Catalog, session: &str, run: &RunSpec) -> Result<()> {
    let Ok(WeightsSource::Run {
        session: Some(other),
        run: source,
    }) = WeightsSource::parse(&run.weights)
    else {
        return Ok(());
    };
    let said = format!(
        "session {session:?}, run {:?}: weights = {:?}",
        run.name, run.weights
    );
    if other == session {
        bail!(
            "{said}: for a run of this session write run:{source}/best, and it waits for that run's best weights"
        );
    }
    let listed = |names: Vec<String>| match names.is_empty() {
        true => "none".to_string(),
        false => names.join(", "),
    };
    if !catalog.session_dir(&other).is_dir() {
        bail!(
            "{said}: there is no session {other:?} (sessions: {})",
            listed(catalog.session_names())
        );
    }
    let run_dir = catalog.run(&other, &source);
    if !run_dir.root.is_dir() {
        bail!(
            "{said}: session {other:?} has no run {source:?} (its runs: {})",
            listed(catalog.run_dir_names(&other))
        );
    }
    if !run_dir.best().is_file() {
        bail!(
            "{said}: {other}/{source} has no best.bpk yet (it writes one at its first validation), and weights from another session must be there at launch"
        );
    }
    Ok(())
}
