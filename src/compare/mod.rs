//! `thaw compare SESSION`: did pretrained weights help? Each run's best validation accuracy and
//! loss, how many steps and seconds it took to reach a target accuracy, its trainable
//! parameters and its step time, as a table, as JSON or as a plot.

mod history;
mod params;
mod plot;
mod summary;
mod table;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::paths::Paths;
pub use history::{History, ValPoint};
pub use params::ParamCounts;
pub use plot::PlotFormat;
pub use summary::{RunRecord, RunSummary, default_target};

/// What `thaw compare` was asked for.
#[derive(Debug, Clone)]
pub struct CompareArgs<'a> {
    pub session: &'a str,
    pub json: bool,
    /// The validation accuracy to reach, a fraction (default: 90% of the best run's best).
    pub target_accuracy: Option<f64>,
    /// An .svg or .png file to draw the validation curves into.
    pub plot: Option<&'a Path>,
}

/// Runs `thaw compare`: prints the table (or JSON) and writes the plot if asked.
pub fn main(paths: &Paths, args: &CompareArgs) -> Result<()> {
    if let Some(target) = args.target_accuracy
        && !(target > 0.0 && target <= 1.0)
    {
        bail!(
            "--target-acc {target} is not a fraction of the validation set: expected a number above 0 and at most 1 (0.9 for 90%)"
        );
    }
    if let Some(path) = args.plot {
        PlotFormat::of(path)?;
    }
    let records = read_session(paths, args.session)?;
    let comparison = Comparison::of(&records, args.target_accuracy);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&comparison.runs)?);
    } else {
        print!("{}", comparison.table());
    }
    if let Some(path) = args.plot {
        plot::write(path, args.session, &records)?;
        if !args.json {
            println!("plot written to {}", path.display());
        }
    }
    Ok(())
}

/// A session's runs summarised against one target accuracy: what `thaw compare` prints and
/// what the dashboard's compare view shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The validation accuracy to reach, a fraction.
    pub target: Option<f64>,
    pub runs: Vec<RunSummary>,
}

impl Comparison {
    /// The runs against `target` (default: 90% of the best run's best).
    pub fn of(records: &[RunRecord], target: Option<f64>) -> Self {
        let target = target.or_else(|| default_target(records));
        Self {
            target,
            runs: records.iter().map(|r| RunSummary::new(r, target)).collect(),
        }
    }

    /// The plain-text table, columns aligned.
    pub fn table(&self) -> String {
        table::render(&self.runs, self.target)
    }

    /// The table in at most `width` columns, and the headings of the columns left out.
    pub fn table_within(&self, width: usize) -> (String, Vec<String>) {
        table::render_within(&self.runs, self.target, width)
    }
}

/// Every run of `session`, sorted by name; an unknown session or one without runs is an error.
pub fn read_session(paths: &Paths, session: &str) -> Result<Vec<RunRecord>> {
    let dir = paths.session(session);
    if session.is_empty() || session.starts_with('.') || session.contains('/') || !dir.is_dir() {
        let known = list_dirs(&paths.data.join("sessions")).unwrap_or_default();
        let there = if known.is_empty() {
            "there are no sessions yet (`thaw train FILE` starts one)".to_string()
        } else {
            format!("the sessions there are: {}", known.join(", "))
        };
        bail!(
            "no session {session:?} in {}: {there}",
            paths.data.join("sessions").display()
        );
    }
    let runs_dir = dir.join("runs");
    let names = list_dirs(&runs_dir).unwrap_or_default();
    if names.is_empty() {
        bail!(
            "session {session:?} has no runs: {} holds no run directories",
            runs_dir.display()
        );
    }
    Ok(names
        .iter()
        .map(|name| RunRecord::read(name, &runs_dir.join(name)))
        .collect())
}

/// The names of the directories in `dir`, sorted.
fn list_dirs(dir: &Path) -> Result<Vec<String>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .filter_map(|p: PathBuf| p.file_name().map(|n| n.to_string_lossy().to_string()))
        .collect();
    names.sort();
    Ok(names)
}
