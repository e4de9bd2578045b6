//! A session's runs compared, as plain data: what `thaw compare --json` prints and what the
//! daemon sends the dashboard's compare view.

mod table;

use serde::{Deserialize, Serialize};

/// A session's runs summarised against one target accuracy: what `thaw compare` prints and
/// what the dashboard's compare view shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The validation accuracy to reach, a fraction.
    pub target: Option<f64>,
    pub runs: Vec<RunSummary>,
}

impl Comparison {
    /// The plain-text table, columns aligned.
    pub fn table(&self) -> String {
        table::render(&self.runs, self.target)
    }

    /// The table in at most `width` columns, and the headings of the columns left out.
    pub fn table_within(&self, width: usize) -> (String, Vec<String>) {
        table::render_within(&self.runs, self.target, width)
    }
}

/// One run compared: the objects of `thaw compare --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub run: String,
    pub status: Option<String>,
    /// The run's `weights` setting: `none` (from scratch), a file or `run:RUN/best`.
    pub weights: Option<String>,
    pub best_val_accuracy: Option<f64>,
    pub best_val_loss: Option<f64>,
    pub target_accuracy: Option<f64>,
    pub steps_to_target: Option<usize>,
    pub seconds_to_target: Option<f64>,
    pub trainable_params: Option<usize>,
    pub total_params: Option<usize>,
    pub mean_step_ms: Option<f64>,
    /// Epochs done, of `epochs`: fewer, once finished, when it stopped early.
    #[serde(default)]
    pub epochs_trained: Option<usize>,
    #[serde(default)]
    pub epochs: Option<usize>,
}

impl RunSummary {
    /// Whether it finished with fewer epochs than it was to train (`early_stop_patience`).
    pub fn stopped_early(&self) -> bool {
        self.status.as_deref() == Some("finished")
            && matches!((self.epochs_trained, self.epochs), (Some(done), Some(of)) if done < of)
    }
}
