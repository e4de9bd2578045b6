//! The time a run has left: its steps at the current speed, and the validation passes and
//! checkpoints still to come, which a short epoch can spend more time on than on its steps.

/// Where a run is and what it has timed so far.
pub(super) struct Left {
    pub steps_per_epoch: usize,
    pub epochs: usize,
    /// Steps done and epochs done.
    pub step: usize,
    pub epoch: usize,
    pub batch_size: usize,
    /// `checkpoint_every_steps` (0: only at epoch ends).
    pub checkpoint_every: usize,
    pub val_samples: usize,
    /// How long the latest validation pass and checkpoint took.
    pub validate_secs: Option<f64>,
    pub checkpoint_secs: Option<f64>,
}

impl Left {
    /// Seconds to the end of the last epoch at `speed` samples a second: the steps left, a
    /// validation pass at every epoch end left (until one is timed, reckoned at a third of a
    /// training step's time a sample: a forward pass without the backward) and the checkpoints
    /// left at the latest one's time. `None` without a speed.
    pub fn secs(&self, speed: f64) -> Option<f64> {
        if speed.is_nan() || speed <= 0.0 {
            return None;
        }
        let total = self.steps_per_epoch * self.epochs;
        let step = self.step.min(total);
        let epoch_ends = self.epochs.saturating_sub(self.epoch);
        let validate = self
            .validate_secs
            .unwrap_or(self.val_samples as f64 / (3.0 * speed));
        // Periodic checkpoints fall on the multiples of `every` that are not an epoch's last
        // step (that one is the epoch end's).
        let periodic = match self.checkpoint_every {
            0 => 0,
            every => {
                let epoch = self.steps_per_epoch.max(1);
                let both = every / gcd(every, epoch) * epoch;
                let between = |n: usize| total / n - step / n;
                between(every) - between(both)
            }
        };
        let checkpoint = self.checkpoint_secs.unwrap_or(0.0);
        Some(
            ((total - step) * self.batch_size) as f64 / speed
                + epoch_ends as f64 * validate
                + (epoch_ends + periodic) as f64 * checkpoint,
        )
    }
}

fn gcd(a: usize, b: usize) -> usize {
    match b {
        0 => a,
        b => gcd(b, a % b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two epochs of ten steps of four samples, at 40 samples a second: 0.1 s a step.
    fn run() -> Left {
        Left {
            steps_per_epoch: 10,
            epochs: 2,
            step: 0,
            epoch: 0,
            batch_size: 4,
            checkpoint_every: 4,
            val_samples: 60,
            validate_secs: Some(1.5),
            checkpoint_secs: Some(0.5),
        }
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn counts_validation_and_checkpoints_not_only_steps() {
        // 20 steps (2 s), 2 validations (3 s), checkpoints at steps 4, 8, 12 and 16 and at
        // both epoch ends (step 20 is an epoch end, not a periodic one too): 6 x 0.5 s.
        assert!(close(run().secs(40.0), 2.0 + 3.0 + 3.0));
        // Halfway into the second epoch: 5 steps, 1 validation, checkpoints at 16 and 20.
        let later = Left {
            step: 15,
            epoch: 1,
            ..run()
        };
        assert!(close(later.secs(40.0), 0.5 + 1.5 + 1.0));
    }

    #[test]
    fn an_untimed_validation_is_a_third_of_a_training_step_a_sample() {
        let fresh = Left {
            validate_secs: None,
            checkpoint_secs: None,
            checkpoint_every: 0,
            ..run()
        };
        // 60 samples forward only at 120 a second, twice, after 2 s of steps.
        assert!(close(fresh.secs(40.0), 2.0 + 2.0 * 0.5));
    }

    #[test]
    fn nothing_without_a_speed_and_nothing_left_at_the_end() {
        assert_eq!(run().secs(0.0), None);
        assert_eq!(run().secs(f64::NAN), None);
        let done = Left {
            step: 20,
            epoch: 2,
            ..run()
        };
        assert!(close(done.secs(40.0), 0.0));
    }
}
