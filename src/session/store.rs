//! Sessions on disk: `<data>/sessions/<session>/session.toml` and a directory per run.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::SessionSpec;
use crate::engine::rundir::{Desired, RunDir, write_atomic};
use crate::engine::weights::WeightsSource;
use crate::paths::Paths;

/// Creates (or finds again) the session's directory and its runs' directories, each with its
/// `spec.toml` and a `desired.json`. A session of the same name launched from a different file
/// is refused rather than mixed with this one.
pub fn prepare(paths: &Paths, spec: &SessionSpec) -> Result<Vec<RunDir>> {
    let dir = paths.session(&spec.name);
    let session_file = dir.join("session.toml");
    if let Ok(existing) = std::fs::read_to_string(&session_file)
        && existing != spec.source
    {
        bail!(
            "session {:?} already exists in {} with a different session file: give this one another name (name = \"...\") or remove that directory",
            spec.name,
            dir.display()
        );
    }
    for run in &spec.runs {
        check_other_session(paths, &spec.name, run)?;
    }
    std::fs::create_dir_all(dir.join("runs"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    write_atomic(&session_file, spec.source.as_bytes())?;
    let mut runs = Vec::new();
    for run in &spec.runs {
        let run_dir = RunDir::new(paths.run(&spec.name, &run.name));
        std::fs::create_dir_all(&run_dir.root)
            .with_context(|| format!("cannot create {}", run_dir.root.display()))?;
        write_atomic(&run_dir.spec(), run.to_toml().as_bytes())?;
        if !run_dir.desired_path().exists() {
            run_dir.write_desired(&Desired::default())?;
        }
        runs.push(run_dir);
    }
    Ok(runs)
}

/// A run that starts from another session's run (`run:SESSION/RUN/best`) needs that run's
/// best weights now: nothing waits across sessions, so without them it could only fail later.
fn check_other_session(paths: &Paths, session: &str, run: &crate::session::RunSpec) -> Result<()> {
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
    let listed = |dir: PathBuf| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        match names.is_empty() {
            true => "none".to_string(),
            false => names.join(", "),
        }
    };
    let other_dir = paths.session(&other);
    if !other_dir.is_dir() {
        let all = other_dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        bail!(
            "{said}: there is no session {other:?} (sessions: {})",
            listed(all)
        );
    }
    let run_dir = paths.run(&other, &source);
    if !run_dir.is_dir() {
        bail!(
            "{said}: session {other:?} has no run {source:?} (its runs: {})",
            listed(other_dir.join("runs"))
        );
    }
    if !run_dir.join("best.bpk").is_file() {
        bail!(
            "{said}: {other}/{source} has no best.bpk yet (it writes one at its first validation), and weights from another session must be there at launch"
        );
    }
    Ok(())
}
