//! Follows what a worker writes into its run directory: new lines of `metrics.csv` and
//! `events.jsonl` (read from where the last look stopped; a file that was replaced or
//! shortened is read again from the start) and `state.json` when it changed. Metrics go into
//! bounded series, so a run of any length costs the same memory.

use std::collections::VecDeque;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use crate::protocol::{History, MetricPoint};
use crate::run::event::parse_event;
use crate::run::follow::{FileTail, Tailed};
use crate::run::metrics::{MetricLine, MetricsColumns, Split};
use crate::run::{Event, RunDir, RunState};
use crate::series::Series;

/// Events kept in memory per run (for snapshots); `logs` reads the file.
const RECENT_EVENTS: usize = 200;

/// A row of `metrics.csv` as clients are sent it.
fn point(row: &MetricLine) -> MetricPoint {
    MetricPoint {
        step: row.step as u64,
        split: row.split.word().to_string(),
        loss: row.loss,
        accuracy: row.accuracy,
        grad_norm: row.grad_norm,
    }
}

/// A run's metrics, bounded.
#[derive(Debug, Default)]
pub struct RunHistory {
    train_loss: Series,
    train_accuracy: Series,
    val_loss: Series,
    val_accuracy: Series,
    grad_norm: Series,
}

impl RunHistory {
    pub fn add(&mut self, row: &MetricPoint) {
        if let Some(norm) = row.grad_norm {
            self.grad_norm.push(row.step, norm);
        }
        let (loss, accuracy) = match row.split.as_str() {
            "val" => (&mut self.val_loss, &mut self.val_accuracy),
            _ => (&mut self.train_loss, &mut self.train_accuracy),
        };
        loss.push(row.step, row.loss);
        accuracy.push(row.step, row.accuracy);
    }

    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// The series as sent to clients.
    pub fn to_wire(&self) -> History {
        History {
            train_loss: self.train_loss.points(),
            train_accuracy: self.train_accuracy.points(),
            val_loss: self.val_loss.points(),
            val_accuracy: self.val_accuracy.points(),
            grad_norm: self.grad_norm.points(),
        }
    }
}

/// What changed in a run directory since the last look.
#[derive(Debug, Default)]
pub struct Changes {
    /// New metric rows (only collected when someone listens).
    pub rows: Vec<MetricPoint>,
    pub events: Vec<Event>,
    /// `state.json`, when it was rewritten.
    pub state: Option<RunState>,
    /// The history was read again from the start, or too much arrived to send row by row.
    pub history_rebuilt: bool,
}

/// Everything the daemon follows in one run directory.
#[derive(Debug)]
pub struct RunTail {
    metrics: FileTail,
    events: FileTail,
    state_path: PathBuf,
    state_stamp: Option<(i64, i64, u64, u64)>,
    pub history: RunHistory,
    pub recent_events: VecDeque<Event>,
    /// Each group's learning rate in the last training row.
    pub lrs: Vec<f64>,
    /// Where they are in a row, from the header.
    columns: Option<MetricsColumns>,
}

/// Above this many new rows in one look, clients get the rebuilt history instead.
const ROWS_PER_UPDATE: usize = 1000;

impl RunTail {
    pub fn new(run: &RunDir) -> Self {
        Self {
            metrics: FileTail::new(run.metrics_path()),
            events: FileTail::new(run.events_path()),
            state_path: run.state_path(),
            state_stamp: None,
            history: RunHistory::default(),
            recent_events: VecDeque::new(),
            lrs: Vec::new(),
            columns: None,
        }
    }

    /// The length of `events.jsonl` the daemon has read (and announced).
    pub fn events_read(&self) -> u64 {
        self.events.consumed()
    }

    /// Reads what is new; `collect` keeps the new rows for clients.
    pub fn poll(&mut self, collect: bool) -> Changes {
        let mut changes = Changes::default();
        let (history, rows) = (&mut self.history, &mut changes.rows);
        let (lrs, columns) = (&mut self.lrs, &mut self.columns);
        let restarted = self.metrics.poll(|tailed| match tailed {
            Tailed::Restart => {
                history.clear();
                *columns = None;
            }
            Tailed::Line(line) => {
                if let Some(row) = columns.as_ref().and_then(|c| c.row(line)) {
                    if row.split == Split::Train {
                        *lrs = row.lrs();
                    }
                    let row = point(&row);
                    history.add(&row);
                    if collect && rows.len() <= ROWS_PER_UPDATE {
                        rows.push(row);
                    }
                } else if let Some(header) = MetricsColumns::of_header(line) {
                    *columns = Some(header);
                }
            }
        });
        if restarted || changes.rows.len() > ROWS_PER_UPDATE {
            changes.history_rebuilt = true;
            changes.rows.clear();
        }
        let (events, recent) = (&mut changes.events, &mut self.recent_events);
        self.events.poll(|tailed| match tailed {
            Tailed::Restart => recent.clear(),
            Tailed::Line(line) => {
                if let Some(event) = parse_event(line) {
                    events.push(event);
                }
            }
        });
        for event in &changes.events {
            if self.recent_events.len() == RECENT_EVENTS {
                self.recent_events.pop_front();
            }
            self.recent_events.push_back(event.clone());
        }
        changes.state = self.read_state_if_changed();
        changes
    }

    fn read_state_if_changed(&mut self) -> Option<RunState> {
        let meta = std::fs::metadata(&self.state_path).ok()?;
        let stamp = (meta.mtime(), meta.mtime_nsec(), meta.len(), meta.ino());
        if self.state_stamp == Some(stamp) {
            return None;
        }
        let state = std::fs::read(&self.state_path)
            .ok()
            .and_then(|raw| serde_json::from_slice(&raw).ok())?;
        self.state_stamp = Some(stamp);
        Some(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_rows_parse_and_a_rewritten_file_rebuilds_the_history() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let header = "step,epoch,split,loss,accuracy,lr_head,samples_per_sec,wall_time\n";
        let rows: String = (1..=5)
            .map(|s| format!("{s},0,train,{},0.5,1e-3,10.00,0.100\n", 1.0 / s as f64))
            .collect();
        std::fs::write(run.metrics_path(), format!("{header}{rows}")).unwrap();
        let mut tail = RunTail::new(&run);
        let changes = tail.poll(true);
        assert_eq!(changes.rows.len(), 5);
        assert_eq!(changes.rows[1].step, 2);
        assert_eq!(tail.history.to_wire().train_loss.len(), 5);
        let kept: String = rows.lines().take(2).map(|l| format!("{l}\n")).collect();
        crate::run::write_atomic(&run.metrics_path(), format!("{header}{kept}").as_bytes())
            .unwrap();
        let changes = tail.poll(true);
        assert!(changes.history_rebuilt);
        let steps: Vec<u64> = tail
            .history
            .to_wire()
            .train_loss
            .iter()
            .map(|p| p.step)
            .collect();
        assert_eq!(steps, [1, 2]);
    }

    #[test]
    fn the_rates_and_the_gradient_norm_are_read_where_the_header_puts_them() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        // A file an older thaw began ends at `wall_time`; one begun now has two more columns.
        for (header, row, norm) in [
            (
                "step,epoch,split,loss,accuracy,lr_body,lr_head,samples_per_sec,wall_time",
                "10,0,train,0.5,0.25,1e-4,1e-3,10.00,0.100",
                None,
            ),
            (
                "step,epoch,split,loss,accuracy,lr_body,lr_head,samples_per_sec,wall_time,grad_norm,clipped",
                "10,0,train,0.5,0.25,1e-4,1e-3,10.00,0.100,3.2e0,0.5",
                Some(3.2),
            ),
            (
                "step,epoch,split,loss,accuracy,lr_body,lr_head,samples_per_sec,wall_time,grad_norm,clipped",
                "10,0,train,0.5,0.25,1e-4,1e-3,10.00,0.100,,",
                None,
            ),
        ] {
            crate::run::write_atomic(&run.metrics_path(), format!("{header}\n{row}\n").as_bytes())
                .unwrap();
            let mut tail = RunTail::new(&run);
            let changes = tail.poll(true);
            assert_eq!(tail.lrs, [1e-4, 1e-3], "{header}");
            assert_eq!(changes.rows[0].grad_norm, norm, "{row}");
            let history: Vec<f64> = tail
                .history
                .to_wire()
                .grad_norm
                .iter()
                .map(|p| p.mean)
                .collect();
            assert_eq!(history, Vec::from_iter(norm), "{row}");
        }
    }
}
