//! Sessions on disk: `<data>/sessions/<session>/session.toml` and a directory per run.

use anyhow::{Context, Result, bail};

use super::SessionSpec;
use crate::engine::rundir::{Desired, RunDir, write_atomic};
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
