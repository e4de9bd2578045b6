//! `metrics.csv`: a row per logged training interval and per validation pass, appended by the
//! worker. Its one writer and its one reader: the daemon's tail and `thaw compare` read rows
//! through [`MetricsColumns::row`], so they agree on every row.
//!
//! The rule for numbers that are not finite: a row whose loss or accuracy is not a finite
//! number is not a row (a NaN loss is an event, `nan`, not a point of a curve); a figure past
//! those that is not finite reads as absent.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::ops::Range;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::dir::{RunDir, append, write_atomic};

/// One row of `metrics.csv`: a logged training interval or a validation pass.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    pub step: usize,
    pub epoch: usize,
    pub split: Split,
    pub loss: f64,
    pub accuracy: f64,
    pub lrs: Vec<f64>,
    pub samples_per_sec: f64,
    pub wall_time: f64,
    /// The gradient norm over a training interval of a run with `grad_clip_norm`.
    pub grad_norm: Option<GradNorm>,
}

/// Which pass a row is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
}

impl Split {
    /// As the file spells it.
    pub fn word(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
        }
    }

    fn parse(word: &str) -> Option<Self> {
        match word {
            "train" => Some(Split::Train),
            "val" => Some(Split::Val),
            _ => None,
        }
    }
}

/// The global gradient norm over a logging interval: its mean before clipping, and the share
/// of the interval's steps that `grad_clip_norm` scaled down.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GradNorm {
    pub mean: f64,
    pub clipped: f64,
}

/// The columns a `metrics.csv` has: one an older thaw began ends at `wall_time`, and the rows
/// appended to it keep to that, so that every row has its header's columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsLayout {
    /// `...,wall_time,grad_norm,clipped`.
    Current,
    /// `...,wall_time`.
    WithoutGradNorm,
}

/// The columns after `wall_time` in a `metrics.csv` thaw begins now.
const GRAD_COLUMNS: &str = "grad_norm,clipped";

impl RunDir {
    /// Starts `metrics.csv` with its header unless it exists; the columns its rows are to have.
    pub fn init_metrics(&self, groups: &[String]) -> Result<MetricsLayout> {
        let Ok(file) = File::open(self.metrics_path()) else {
            return self.reset_metrics(groups);
        };
        let mut header = String::new();
        BufReader::new(file)
            .read_line(&mut header)
            .with_context(|| format!("cannot read {}", self.metrics_path().display()))?;
        Ok(match header.trim_end().ends_with(GRAD_COLUMNS) {
            true => MetricsLayout::Current,
            false => MetricsLayout::WithoutGradNorm,
        })
    }

    /// Starts `metrics.csv` afresh, for a run that starts from its first step: the rows of an
    /// earlier attempt that left no checkpoint go, and the header names these groups.
    pub fn reset_metrics(&self, groups: &[String]) -> Result<MetricsLayout> {
        let lrs: Vec<String> = groups.iter().map(|g| format!("lr_{g}")).collect();
        let header = format!(
            "step,epoch,split,loss,accuracy,{},samples_per_sec,wall_time,{GRAD_COLUMNS}\n",
            lrs.join(",")
        );
        write_atomic(&self.metrics_path(), header.as_bytes())?;
        Ok(MetricsLayout::Current)
    }

    /// Appends `row` with the columns of `layout` (what [`RunDir::init_metrics`] said); a row
    /// with no gradient norm leaves those columns empty.
    pub fn append_metric(&self, row: &MetricRow, layout: MetricsLayout) -> Result<()> {
        let lrs: Vec<String> = row.lrs.iter().map(|lr| format!("{lr:e}")).collect();
        let grad = match (layout, row.grad_norm) {
            (MetricsLayout::WithoutGradNorm, _) => String::new(),
            (MetricsLayout::Current, None) => ",,".into(),
            (MetricsLayout::Current, Some(g)) => format!(",{:.4e},{:.4}", g.mean, g.clipped),
        };
        let line = format!(
            "{},{},{},{},{},{},{:.2},{:.3}{grad}\n",
            row.step,
            row.epoch,
            row.split.word(),
            row.loss,
            row.accuracy,
            lrs.join(","),
            row.samples_per_sec,
            row.wall_time
        );
        append(&self.metrics_path(), line.as_bytes())
    }

    /// Drops metric rows logged after `step`: a run resumed from a checkpoint at `step` logs
    /// them again, and the history must not hold them twice.
    pub fn truncate_metrics_after(&self, step: usize) -> Result<()> {
        let Ok(text) = std::fs::read_to_string(self.metrics_path()) else {
            return Ok(());
        };
        let mut kept = String::with_capacity(text.len());
        for (i, line) in text.lines().enumerate() {
            let row_step = line.split(',').next().and_then(|s| s.parse::<usize>().ok());
            if i == 0 || row_step.is_some_and(|s| s <= step) {
                kept.push_str(line);
                kept.push('\n');
            }
        }
        write_atomic(&self.metrics_path(), kept.as_bytes())
    }
}

/// Where a `metrics.csv`'s columns are, as its header names them: five fixed ones, the
/// learning rates between `accuracy` and `samples_per_sec`, `wall_time`, and `grad_norm` and
/// `clipped` in a file begun by a thaw that records them.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsColumns {
    width: usize,
    lrs: Range<usize>,
    samples_per_sec: usize,
    wall_time: usize,
    grad_norm: Option<usize>,
    clipped: Option<usize>,
}

/// A row as [`MetricsColumns::row`] reads it, borrowing its line.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricLine<'a> {
    pub step: usize,
    pub epoch: usize,
    pub split: Split,
    pub loss: f64,
    pub accuracy: f64,
    /// The learning rate columns, as written (see [`MetricLine::lrs`]).
    lrs: &'a str,
    pub samples_per_sec: f64,
    pub wall_time: f64,
    /// The interval's mean gradient norm (training rows of runs with `grad_clip_norm`).
    pub grad_norm: Option<f64>,
    pub clipped: Option<f64>,
}

impl MetricLine<'_> {
    /// Each group's learning rate, in group order.
    pub fn lrs(&self) -> Vec<f64> {
        match self.lrs.is_empty() {
            true => Vec::new(),
            false => self.lrs.split(',').filter_map(|f| f.parse().ok()).collect(),
        }
    }
}

impl MetricsColumns {
    /// The columns a header line names; `None` for a line that is not a header.
    pub fn of_header(header: &str) -> Option<Self> {
        let names: Vec<&str> = header.split(',').map(str::trim).collect();
        let fixed = ["step", "epoch", "split", "loss", "accuracy"];
        if names.len() < fixed.len() || names[..fixed.len()] != fixed {
            return None;
        }
        let at = |name: &str| names.iter().position(|n| *n == name);
        let samples_per_sec = at("samples_per_sec")?;
        Some(Self {
            width: names.len(),
            lrs: fixed.len()..samples_per_sec,
            samples_per_sec,
            wall_time: at("wall_time")?,
            grad_norm: at("grad_norm"),
            clipped: at("clipped"),
        })
    }

    /// The group names of the learning rate columns (`lr_NAME`).
    pub fn groups<'h>(&self, header: &'h str) -> Vec<&'h str> {
        header
            .split(',')
            .skip(self.lrs.start)
            .take(self.lrs.len())
            .map(|c| c.trim().strip_prefix("lr_").unwrap_or(c))
            .collect()
    }

    /// A row of the file; `None` for a line that is not one: another number of fields, a
    /// field that does not parse, or a loss or accuracy that is not finite.
    pub fn row<'a>(&self, line: &'a str) -> Option<MetricLine<'a>> {
        // One pass, nothing collected: a daemon starting up reads millions of rows.
        let (mut step, mut epoch, mut split, mut loss, mut accuracy) =
            (None, None, None, None, None);
        let (mut samples_per_sec, mut wall_time) = (None, None);
        let (mut grad_norm, mut clipped) = (None, None);
        let (mut lrs_start, mut lrs_end) = (0, 0);
        let mut offset = 0;
        let mut count = 0;
        for (i, field) in line.split(',').enumerate() {
            let start = offset;
            offset += field.len() + 1;
            count = i + 1;
            let field = field.trim();
            let number = || field.parse::<f64>().ok().filter(|v| v.is_finite());
            match i {
                0 => step = Some(field.parse().ok()?),
                1 => epoch = Some(field.parse().ok()?),
                2 => split = Some(Split::parse(field)?),
                3 => loss = Some(number()?),
                4 => accuracy = Some(number()?),
                i if i == self.lrs.start => {
                    lrs_start = start;
                    lrs_end = start + field.len();
                }
                i if self.lrs.contains(&i) => lrs_end = start + field.len(),
                i if i == self.samples_per_sec => samples_per_sec = Some(number()?),
                i if i == self.wall_time => wall_time = Some(number()?),
                i if Some(i) == self.grad_norm => grad_norm = number(),
                i if Some(i) == self.clipped => clipped = number(),
                _ => {}
            }
        }
        if count != self.width {
            return None;
        }
        Some(MetricLine {
            step: step?,
            epoch: epoch?,
            split: split?,
            loss: loss?,
            accuracy: accuracy?,
            lrs: line.get(lrs_start..lrs_end).unwrap_or(""),
            samples_per_sec: samples_per_sec?,
            wall_time: wall_time?,
            grad_norm,
            clipped,
        })
    }
}

/// Reads a whole `metrics.csv`, handing each row to `each`; a missing file or one without a
/// header hands none.
pub fn read_rows(run: &RunDir, each: impl FnMut(&MetricLine)) {
    if let Ok(text) = std::fs::read_to_string(run.metrics_path()) {
        parse_rows(&text, each);
    }
}

/// Hands each row of the text of a `metrics.csv` to `each`; text without a header hands none.
pub fn parse_rows(text: &str, mut each: impl FnMut(&MetricLine)) {
    let mut lines = text.lines();
    let Some(columns) = lines.next().and_then(MetricsColumns::of_header) else {
        return;
    };
    lines
        .filter_map(|line| columns.row(line))
        .for_each(|row| each(&row));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> MetricRow {
        MetricRow {
            step: 10,
            epoch: 0,
            split: Split::Train,
            loss: 0.5,
            accuracy: 0.25,
            lrs: vec![1e-4, 1e-3],
            samples_per_sec: 10.0,
            wall_time: 0.1,
            grad_norm: Some(GradNorm {
                mean: 3.25,
                clipped: 0.5,
            }),
        }
    }

    #[test]
    fn rows_keep_to_the_columns_of_the_metrics_file_they_join() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let groups = ["body".to_string(), "head".to_string()];
        let row = row();
        let lines = || {
            let text = std::fs::read_to_string(run.metrics_path()).unwrap();
            text.lines().map(String::from).collect::<Vec<_>>()
        };

        let layout = run.init_metrics(&groups).unwrap();
        assert_eq!(layout, MetricsLayout::Current);
        run.append_metric(&row, layout).unwrap();
        let no_norm = MetricRow {
            grad_norm: None,
            ..row.clone()
        };
        run.append_metric(&no_norm, layout).unwrap();
        assert_eq!(
            lines(),
            [
                "step,epoch,split,loss,accuracy,lr_body,lr_head,samples_per_sec,wall_time,grad_norm,clipped",
                "10,0,train,0.5,0.25,1e-4,1e-3,10.00,0.100,3.2500e0,0.5000",
                "10,0,train,0.5,0.25,1e-4,1e-3,10.00,0.100,,",
            ]
        );
        assert_eq!(run.init_metrics(&groups).unwrap(), MetricsLayout::Current);

        // A run an older thaw began goes on in the columns its file has.
        let old = "step,epoch,split,loss,accuracy,lr_body,lr_head,samples_per_sec,wall_time";
        std::fs::write(run.metrics_path(), format!("{old}\n")).unwrap();
        let layout = run.init_metrics(&groups).unwrap();
        assert_eq!(layout, MetricsLayout::WithoutGradNorm);
        run.append_metric(&row, layout).unwrap();
        assert_eq!(lines(), [old, "10,0,train,0.5,0.25,1e-4,1e-3,10.00,0.100"]);
        // Started afresh, it has them.
        assert_eq!(run.reset_metrics(&groups).unwrap(), MetricsLayout::Current);
    }

    #[test]
    fn the_reader_reads_back_what_the_writer_wrote_in_either_layout() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let groups = ["body".to_string(), "head".to_string()];
        let layout = run.reset_metrics(&groups).unwrap();
        run.append_metric(&row(), layout).unwrap();
        let mut read = Vec::new();
        read_rows(&run, |r| {
            read.push((r.step, r.split, r.loss, r.lrs(), r.grad_norm, r.clipped))
        });
        assert_eq!(
            read,
            [(
                10,
                Split::Train,
                0.5,
                vec![1e-4, 1e-3],
                Some(3.25),
                Some(0.5)
            )]
        );
        let header = std::fs::read_to_string(run.metrics_path()).unwrap();
        let header = header.lines().next().unwrap();
        let columns = MetricsColumns::of_header(header).unwrap();
        assert_eq!(columns.groups(header), ["body", "head"]);

        let old = MetricsColumns::of_header(
            "step,epoch,split,loss,accuracy,lr_stem,samples_per_sec,wall_time",
        )
        .unwrap();
        let line = old.row("12,0,val,1.2,0.5,1e-3,900.00,1.500").unwrap();
        assert_eq!(
            (line.split, line.wall_time, line.grad_norm),
            (Split::Val, 1.5, None)
        );
        assert_eq!(line.lrs(), [1e-3]);
    }

    #[test]
    fn rows_that_are_damaged_or_not_finite_are_not_rows() {
        let columns = MetricsColumns::of_header(
            "step,epoch,split,loss,accuracy,lr_a,lr_b,samples_per_sec,wall_time,grad_norm,clipped",
        )
        .unwrap();
        let good = "7,0,train,0.5,0.25,1e-4,1e-3,10.00,0.100,,";
        assert!(columns.row(good).is_some());
        for bad in [
            "7,0,train,NaN,0.25,1e-4,1e-3,10.00,0.100,,",
            "7,0,train,0.5,inf,1e-4,1e-3,10.00,0.100,,",
            "7,0,train,0.5,0.25,1e-4,1e-3,10.00,0.100",
            "7,0,test,0.5,0.25,1e-4,1e-3,10.00,0.100,,",
            "x,0,train,0.5,0.25,1e-4,1e-3,10.00,0.100,,",
            "7,0,train,0.5,0.25,1e-4,1e-3,10.00,0.100,,,",
            "garbage",
            "",
        ] {
            assert_eq!(columns.row(bad), None, "{bad}");
        }
        // A gradient norm that is not finite reads as none; the row stands.
        let row = columns
            .row("7,0,train,0.5,0.25,1e-4,1e-3,10.00,0.100,NaN,0.5")
            .unwrap();
        assert_eq!((row.grad_norm, row.clipped), (None, Some(0.5)));
        assert_eq!(MetricsColumns::of_header("not,a,header"), None);
        assert_eq!(MetricsColumns::of_header(""), None);
    }
}
