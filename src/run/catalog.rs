//! The sessions and runs on disk: `<data>/sessions/<session>/session.toml` and
//! `<data>/sessions/<session>/runs/<run>/`. Listing them, in the order a user expects, and
//! finding the run a user named (`SESSION/RUN`, or `RUN` when one session has it) happen here
//! and nowhere else.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::dir::{BEST, RunDir, SPEC};
use crate::paths::Paths;

/// The session file as launched, in its session's directory.
const SESSION_FILE: &str = "session.toml";

/// Every session and run under `<data>/sessions`.
#[derive(Debug, Clone)]
pub struct Catalog {
    root: PathBuf,
}

/// A session on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionEntry {
    pub name: String,
    /// When its session file was last written (launched), seconds since the Unix epoch.
    pub launched: f64,
}

impl Catalog {
    /// The catalog of thaw's data directory.
    pub fn of(paths: &Paths) -> Self {
        Self {
            root: paths.data.join("sessions"),
        }
    }

    /// `<data>/sessions`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of one session.
    pub fn session_dir(&self, session: &str) -> PathBuf {
        self.root.join(session)
    }

    /// The session file as launched.
    pub fn session_file(&self, session: &str) -> PathBuf {
        self.session_dir(session).join(SESSION_FILE)
    }

    /// The directory that holds a session's run directories.
    pub fn runs_dir(&self, session: &str) -> PathBuf {
        self.session_dir(session).join("runs")
    }

    /// The directory of one run.
    pub fn run(&self, session: &str, run: &str) -> RunDir {
        RunDir::new(self.runs_dir(session).join(run))
    }

    /// The launched sessions (those with a session file), the first launched first.
    pub fn sessions(&self) -> Vec<SessionEntry> {
        let mut found: Vec<SessionEntry> = dir_names(&self.root)
            .into_iter()
            .filter_map(|name| {
                let meta = std::fs::metadata(self.session_file(&name)).ok()?;
                let launched = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0.0, |d| d.as_secs_f64());
                Some(SessionEntry { name, launched })
            })
            .collect();
        found.sort_by(|a, b| a.launched.total_cmp(&b.launched).then(a.name.cmp(&b.name)));
        found
    }

    /// Every directory under `<data>/sessions`, sorted by name.
    pub fn session_names(&self) -> Vec<String> {
        dir_names(&self.root)
    }

    /// A session's runs (those with a `spec.toml`), in its session file's order; directories
    /// the file does not name come after, sorted.
    pub fn runs(&self, session: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_to_string(self.session_file(session))
            .ok()
            .and_then(|text| toml::from_str::<toml::Table>(&text).ok())
            .and_then(|t| t.get("runs").and_then(|r| r.as_array()).cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|r| r.get("name").and_then(|n| n.as_str()).map(String::from))
            .collect();
        let has_spec = |name: &String| self.run(session, name).spec().is_file();
        let rest: Vec<String> = dir_names(&self.runs_dir(session))
            .into_iter()
            .filter(|n| has_spec(n) && !names.contains(n))
            .collect();
        names.retain(has_spec);
        names.extend(rest);
        names
    }

    /// Every directory in a session's `runs/`, sorted by name.
    pub fn run_dir_names(&self, session: &str) -> Vec<String> {
        dir_names(&self.runs_dir(session))
    }

    /// Every run (a directory with its `spec.toml`) of every session directory, as (session,
    /// run): sessions by name, runs in their session file's order.
    pub fn all_runs(&self) -> Vec<(String, String)> {
        self.session_names()
            .into_iter()
            .flat_map(|session| {
                let runs = self.runs(&session);
                runs.into_iter().map(move |run| (session.clone(), run))
            })
            .collect()
    }

    /// The run a user named (see [`resolve`]), with its session.
    pub fn find(&self, name: &str) -> Result<(String, RunDir)> {
        let runs = self.all_runs();
        let i = resolve(name, &runs).map_err(anyhow::Error::msg)?;
        let (session, run) = &runs[i];
        Ok((session.clone(), self.run(session, run)))
    }
}

/// Which of `runs` (session, run) a user named: `SESSION/RUN`, or `RUN` when one session
/// alone has it. The error lists the runs there are, or says which to write.
pub fn resolve(name: &str, runs: &[(String, String)]) -> Result<usize, String> {
    let matches: Vec<usize> = (0..runs.len())
        .filter(|&i| {
            let (session, run) = &runs[i];
            match name.split_once('/') {
                Some((s, r)) => s == session && r == run,
                None => name == run,
            }
        })
        .collect();
    let full = |i: usize| format!("{}/{}", runs[i].0, runs[i].1);
    match matches.as_slice() {
        [i] => Ok(*i),
        [] if runs.is_empty() => Err(format!("no run {name:?}: no session has been launched")),
        [] => {
            let all: Vec<String> = (0..runs.len()).map(full).collect();
            Err(format!("no run {name:?}: the runs are {}", all.join(", ")))
        }
        several => {
            let names: Vec<String> = several.iter().map(|&i| full(i)).collect();
            Err(format!(
                "run {name:?} is in more than one session: say {}",
                names.join(" or ")
            ))
        }
    }
}

impl RunDir {
    /// The best weights of another run, seen from this one's directory: of this session when
    /// `session` is `None`.
    pub fn best_of(&self, session: Option<&str>, run: &str) -> Option<PathBuf> {
        let runs = self.root.parent()?;
        let runs = match session {
            None => runs.to_path_buf(),
            Some(session) => runs.parent()?.parent()?.join(session).join("runs"),
        };
        Some(runs.join(run).join(BEST))
    }

    /// Whether a run's settings are there (a run directory a launch finished writing).
    pub fn has_spec(&self) -> bool {
        self.root.join(SPEC).is_file()
    }
}

/// The names of the directories in `dir`, sorted; none when it cannot be read.
fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(dir: &Path) -> Catalog {
        Catalog::of(&Paths {
            data: dir.join("data"),
            config: dir.join("config"),
            runtime: dir.join("run"),
        })
    }

    fn run(catalog: &Catalog, session: &str, run: &str) {
        let dir = catalog.run(session, run);
        std::fs::create_dir_all(&dir.root).unwrap();
        std::fs::write(dir.spec(), "").unwrap();
        std::fs::write(catalog.session_file(session), "").unwrap();
    }

    #[test]
    fn runs_come_in_the_session_file_s_order_then_the_rest_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = catalog(dir.path());
        for name in ["c", "a", "b", "z"] {
            run(&catalog, "s", name);
        }
        std::fs::create_dir_all(catalog.runs_dir("s").join("no-spec")).unwrap();
        std::fs::write(
            catalog.session_file("s"),
            "name = \"s\"\n[[runs]]\nname = \"c\"\n[[runs]]\nname = \"gone\"\n[[runs]]\nname = \"a\"\n",
        )
        .unwrap();
        assert_eq!(catalog.runs("s"), ["c", "a", "b", "z"]);
        assert_eq!(catalog.run_dir_names("s"), ["a", "b", "c", "no-spec", "z"]);
        let sessions: Vec<String> = catalog.sessions().into_iter().map(|s| s.name).collect();
        assert_eq!(sessions, ["s"]);
    }

    #[test]
    fn a_run_is_found_by_session_and_name_or_by_a_name_one_session_has() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = catalog(dir.path());
        run(&catalog, "one", "only");
        run(&catalog, "one", "both");
        run(&catalog, "two", "both");
        let (session, found) = catalog.find("only").unwrap();
        assert_eq!(
            (session.as_str(), found.root),
            ("one", catalog.run("one", "only").root)
        );
        assert_eq!(catalog.find("two/both").unwrap().0, "two");
        let error = |name| format!("{:#}", catalog.find(name).unwrap_err());
        assert!(
            error("both").contains("more than one session: say one/both or two/both"),
            "{}",
            error("both")
        );
        assert!(
            error("none").contains("the runs are one/both, one/only, two/both"),
            "{}",
            error("none")
        );
        assert!(error("one/none").contains("no run \"one/none\""));
    }

    #[test]
    fn another_run_s_best_weights_are_found_from_a_run_s_directory() {
        let run = RunDir::new("/d/sessions/s/runs/ft");
        assert_eq!(
            run.best_of(None, "pretrain").unwrap(),
            Path::new("/d/sessions/s/runs/pretrain/best.bpk")
        );
        assert_eq!(
            run.best_of(Some("old"), "pre").unwrap(),
            Path::new("/d/sessions/old/runs/pre/best.bpk")
        );
    }
}
