//! `thaw compare SESSION`: did pretrained weights help? Each run's best validation accuracy and
//! loss, how many steps and seconds it took to reach a target accuracy, its trainable
//! parameters and its step time, as a table, as JSON or as a plot.

mod history;
mod params;
mod plot;
mod summary;

use std::path::Path;

use anyhow::{Result, bail};

use crate::paths::Paths;
use crate::run::Catalog;
pub use history::{History, ValPoint};
pub use params::ParamCounts;
pub use plot::PlotFormat;
pub use summary::{RunRecord, default_target, summarise};

use crate::protocol::Comparison;

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
    let comparison = compare(&records, args.target_accuracy);
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

/// The runs against `target` (default: 90% of the best run's best): what `thaw compare`
/// prints and the dashboard's compare view shows.
pub fn compare(records: &[RunRecord], target: Option<f64>) -> Comparison {
    let target = target.or_else(|| default_target(records));
    Comparison {
        target,
        runs: records.iter().map(|r| summarise(r, target)).collect(),
    }
}

/// Every run of `session`, sorted by name; an unknown session or one without runs is an error.
pub fn read_session(paths: &Paths, session: &str) -> Result<Vec<RunRecord>> {
    let catalog = Catalog::of(paths);
    let dir = catalog.session_dir(session);
    if session.is_empty() || session.starts_with('.') || session.contains('/') || !dir.is_dir() {
        let known = catalog.session_names();
        let there = if known.is_empty() {
            "there are no sessions yet (`thaw train FILE` starts one)".to_string()
        } else {
            format!("the sessions there are: {}", known.join(", "))
        };
        bail!(
            "no session {session:?} in {}: {there}",
            catalog.root().display()
        );
    }
    let names = catalog.run_dir_names(session);
    if names.is_empty() {
        bail!(
            "session {session:?} has no runs: {} holds no run directories",
            catalog.runs_dir(session).display()
        );
    }
    Ok(names
        .iter()
        .map(|name| RunRecord::read(name, &catalog.run(session, name)))
        .collect())
}
