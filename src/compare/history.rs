//! A run's `metrics.csv` as `thaw compare` needs it: the validation curve and the training speed.

use crate::run::RunDir;
use crate::run::metrics::{MetricLine, Split, parse_rows, read_rows};

/// One validation pass: `metrics.csv` rows with split `val`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValPoint {
    pub step: usize,
    pub loss: f64,
    pub accuracy: f64,
    /// Seconds of training up to this pass, summed over the run's worker processes.
    pub seconds: f64,
}

/// What `metrics.csv` says about a run; rows that do not parse are skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub val: Vec<ValPoint>,
    /// `samples_per_sec` of every training row, zeros left out.
    pub train_speeds: Vec<f64>,
}

impl History {
    /// Reads the run's `metrics.csv`; a missing file or one without the expected header is an
    /// empty history.
    pub fn read(run: &RunDir) -> Self {
        let mut history = Self::default();
        let mut clock = Clock::default();
        read_rows(run, |row| history.add(row, &mut clock));
        history
    }

    /// Parses the text of `metrics.csv`, finding the columns by their header names.
    pub fn parse(text: &str) -> Self {
        let mut history = Self::default();
        let mut clock = Clock::default();
        parse_rows(text, |row| history.add(row, &mut clock));
        history
    }

    fn add(&mut self, row: &MetricLine, clock: &mut Clock) {
        let seconds = clock.total(row.wall_time);
        match row.split {
            Split::Val => self.val.push(ValPoint {
                step: row.step,
                loss: row.loss,
                accuracy: row.accuracy,
                seconds,
            }),
            Split::Train if row.samples_per_sec > 0.0 => {
                self.train_speeds.push(row.samples_per_sec)
            }
            Split::Train => {}
        }
    }

    /// The highest validation accuracy.
    pub fn best_accuracy(&self) -> Option<f64> {
        self.val.iter().map(|p| p.accuracy).reduce(f64::max)
    }

    /// The lowest validation loss.
    pub fn best_loss(&self) -> Option<f64> {
        self.val.iter().map(|p| p.loss).reduce(f64::min)
    }

    /// The first validation pass that reached `accuracy`.
    pub fn first_reaching(&self, accuracy: f64) -> Option<ValPoint> {
        self.val.iter().copied().find(|p| p.accuracy >= accuracy)
    }

    /// Mean milliseconds per training step of `batch_size` samples.
    pub fn mean_step_ms(&self, batch_size: usize) -> Option<f64> {
        if self.train_speeds.is_empty() {
            return None;
        }
        let total: f64 = self
            .train_speeds
            .iter()
            .map(|speed| 1000.0 * batch_size as f64 / speed)
            .sum();
        Some(total / self.train_speeds.len() as f64)
    }
}

/// Training time across worker processes: `wall_time` counts from each process's start, so a
/// resumed run's clock starts again from zero; the earlier process's last value carries over.
#[derive(Default)]
struct Clock {
    offset: f64,
    last: f64,
}

impl Clock {
    fn total(&mut self, wall_time: f64) -> f64 {
        if wall_time < self.last {
            self.offset += self.last;
        }
        self.last = wall_time;
        self.offset + wall_time
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "step,epoch,split,loss,accuracy,lr_stem,lr_head,samples_per_sec,wall_time\n";

    #[test]
    fn validation_rows_give_the_curve_and_the_first_pass_reaching_a_target() {
        let text = format!(
            "{HEADER}10,0,train,1.5,0.3,1e-3,1e-3,320.00,1.000\n\
             12,0,val,1.2,0.5,1e-3,1e-3,900.00,1.500\n\
             24,1,val,0.8,0.75,1e-3,1e-3,900.00,3.000\n\
             36,2,val,0.9,0.8,1e-3,1e-3,900.00,4.500\n"
        );
        let h = History::parse(&text);
        assert_eq!(h.val.len(), 3);
        assert_eq!(h.best_accuracy(), Some(0.8));
        assert_eq!(h.best_loss(), Some(0.8));
        let reached = h.first_reaching(0.7).expect("reached");
        assert_eq!((reached.step, reached.seconds), (24, 3.0));
        assert_eq!(h.first_reaching(0.9), None);
    }

    #[test]
    fn step_time_averages_training_rows_and_ignores_zero_speeds() {
        let text = format!(
            "{HEADER}10,0,train,1.5,0.3,1e-3,1e-3,320.00,1.000\n\
             20,0,train,1.4,0.3,1e-3,1e-3,0.00,2.000\n\
             30,0,train,1.3,0.3,1e-3,1e-3,160.00,3.000\n"
        );
        let ms = History::parse(&text).mean_step_ms(32).expect("speeds");
        assert!((ms - 150.0).abs() < 1e-9, "{ms}");
        assert_eq!(History::default().mean_step_ms(32), None);
    }

    #[test]
    fn a_resumed_run_keeps_counting_time_from_before_the_restart() {
        let text = format!(
            "{HEADER}12,0,val,1.2,0.5,1e-3,1e-3,900.00,10.000\n\
             24,1,val,0.8,0.75,1e-3,1e-3,900.00,4.000\n"
        );
        let h = History::parse(&text);
        assert_eq!(h.val[1].seconds, 14.0);
    }

    #[test]
    fn damaged_rows_and_files_are_skipped_not_errors() {
        let text = format!(
            "{HEADER}12,0,val,1.2,0.5,1e-3,1e-3,900.00,1.5\n\
             24,1,val,NaN,0.75,1e-3,1e-3,900.00,3.0\n\
             36,2,val,0.7\n\
             garbage\n"
        );
        assert_eq!(History::parse(&text).val.len(), 1);
        assert_eq!(History::parse("not,a,header\n1,2,3\n"), History::default());
        assert_eq!(History::parse(""), History::default());
        assert_eq!(
            History::read(&RunDir::new("/nonexistent")),
            History::default()
        );
    }
}
