//! Follows what a worker writes into its run directory: new lines of `metrics.csv` and
//! `events.jsonl` (read from where the last look stopped; a file that was replaced or
//! shortened is read again from the start) and `state.json` when it changed. Metrics go into
//! bounded series, so a run of any length costs the same memory.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::engine::rundir::{Event, RunDir, RunState};
use crate::protocol::{History, MetricPoint};
use crate::series::Series;

/// Events kept in memory per run (for snapshots); `logs` reads the file.
const RECENT_EVENTS: usize = 200;

/// An append-only file read incrementally, line by line.
#[derive(Debug)]
pub struct FileTail {
    path: PathBuf,
    /// Bytes read so far, including `partial`.
    offset: u64,
    ino: u64,
    /// The start of a line whose end has not been written yet.
    partial: Vec<u8>,
}

impl FileTail {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            offset: 0,
            ino: 0,
            partial: Vec::new(),
        }
    }

    /// The length of the complete lines read so far.
    pub fn consumed(&self) -> u64 {
        self.offset - self.partial.len() as u64
    }

    /// Hands every new complete line over, as [`Tailed::Line`]; a file that was replaced or
    /// shortened since the last look is announced with [`Tailed::Restart`], then handed over
    /// from its start. Returns whether it restarted.
    pub fn poll(&mut self, mut each: impl FnMut(Tailed)) -> bool {
        let Ok(mut file) = File::open(&self.path) else {
            let restart = self.offset > 0;
            if restart {
                each(Tailed::Restart);
            }
            self.offset = 0;
            self.partial.clear();
            return restart;
        };
        let Ok(meta) = file.metadata() else {
            return false;
        };
        let mut restart = false;
        if meta.ino() != self.ino || meta.len() < self.offset {
            restart = self.offset > 0;
            if restart {
                each(Tailed::Restart);
            }
            self.offset = 0;
            self.partial.clear();
            self.ino = meta.ino();
        }
        if meta.len() == self.offset || file.seek(SeekFrom::Start(self.offset)).is_err() {
            return restart;
        }
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            self.offset += n as u64;
            let mut chunk = &buf[..n];
            while let Some(end) = chunk.iter().position(|&b| b == b'\n') {
                if self.partial.is_empty() {
                    each(Tailed::Line(&String::from_utf8_lossy(&chunk[..end])));
                } else {
                    self.partial.extend_from_slice(&chunk[..end]);
                    each(Tailed::Line(&String::from_utf8_lossy(&self.partial)));
                    self.partial.clear();
                }
                chunk = &chunk[end + 1..];
            }
            self.partial.extend_from_slice(chunk);
        }
        restart
    }
}

/// What [`FileTail::poll`] hands over.
pub enum Tailed<'a> {
    /// The file was replaced or shortened: forget what it said; its lines follow again.
    Restart,
    Line(&'a str),
}

/// Where a `metrics.csv`'s columns past the first five are, as its header names them: the
/// learning rates between `accuracy` and `samples_per_sec`, and `grad_norm` after `wall_time`
/// in a file begun by a thaw that records it.
#[derive(Debug, Clone, PartialEq)]
struct Columns {
    lrs: Range<usize>,
    grad_norm: Option<usize>,
}

impl Columns {
    /// `None` for a line that is not a header.
    fn of_header(header: &str) -> Option<Self> {
        let columns: Vec<&str> = header.split(',').collect();
        if columns.first() != Some(&"step") {
            return None;
        }
        let at = |name| columns.iter().position(|c| *c == name);
        Some(Self {
            lrs: 5..at("samples_per_sec")?,
            grad_norm: at("grad_norm"),
        })
    }
}

/// A row of `metrics.csv` (`step,epoch,split,loss,accuracy,...`), its gradient norm where
/// `columns` say; `None` for the header or a line that is not a row.
fn parse_metric(line: &str, columns: Option<&Columns>) -> Option<MetricPoint> {
    // One pass, nothing collected: a daemon starting up reads millions of rows.
    let mut fields = line.split(',');
    let step = fields.next()?.parse().ok()?;
    let _epoch = fields.next()?;
    let split = fields.next()?.to_string();
    let loss = fields.next()?.parse().ok()?;
    let accuracy = fields.next()?.parse().ok()?;
    let grad_norm = columns
        .and_then(|c| c.grad_norm)
        .and_then(|at| fields.nth(at.checked_sub(5)?)?.parse().ok());
    Some(MetricPoint {
        step,
        split,
        loss,
        accuracy,
        grad_norm,
    })
}

/// The per-group learning rates of a `metrics.csv` row.
fn parse_lrs(line: &str, columns: &Columns) -> Vec<f64> {
    line.split(',')
        .skip(columns.lrs.start)
        .take(columns.lrs.len())
        .filter_map(|f| f.parse().ok())
        .collect()
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
    columns: Option<Columns>,
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
                if let Some(row) = parse_metric(line, columns.as_ref()) {
                    if let (true, Some(columns)) = (row.split == "train", &*columns) {
                        *lrs = parse_lrs(line, columns);
                    }
                    history.add(&row);
                    if collect && rows.len() <= ROWS_PER_UPDATE {
                        rows.push(row);
                    }
                } else if let Some(header) = Columns::of_header(line) {
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
                if let Ok(event) = serde_json::from_str::<Event>(line) {
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

/// The events of `events.jsonl` in its first `len` bytes.
pub fn read_events_upto(path: &Path, len: u64) -> Vec<Event> {
    let Ok(file) = File::open(path) else {
        return Vec::new();
    };
    let mut text = Vec::new();
    if file.take(len).read_to_end(&mut text).is_err() {
        return Vec::new();
    }
    String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn lines_are_read_once_and_partial_lines_wait_for_their_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut file = File::create(&path).unwrap();
        let mut tail = FileTail::new(path.clone());
        let mut seen = Vec::new();
        file.write_all(b"a\nb\nc").unwrap();
        let lines = |t: Tailed, seen: &mut Vec<String>| match t {
            Tailed::Restart => seen.push("<restart>".into()),
            Tailed::Line(l) => seen.push(l.to_string()),
        };
        assert!(!tail.poll(|t| lines(t, &mut seen)));
        assert_eq!(seen, ["a", "b"]);
        file.write_all(b"d\ne\n").unwrap();
        tail.poll(|t| lines(t, &mut seen));
        assert_eq!(seen, ["a", "b", "cd", "e"]);
        assert_eq!(tail.consumed(), 9);
        // Replaced by a shorter file (a resumed worker dropping rows): read from the start.
        let tmp = dir.path().join("g");
        std::fs::write(&tmp, "a\n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        seen.clear();
        assert!(tail.poll(|t| lines(t, &mut seen)));
        assert_eq!(seen, ["<restart>", "a"]);
    }

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
        crate::engine::rundir::write_atomic(
            &run.metrics_path(),
            format!("{header}{kept}").as_bytes(),
        )
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
            crate::engine::rundir::write_atomic(
                &run.metrics_path(),
                format!("{header}\n{row}\n").as_bytes(),
            )
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
