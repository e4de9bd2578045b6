//! Freeze schedules (freeze N epochs then unfreeze; gradual unfreezing) and per-group
//! learning rates.

use std::collections::BTreeMap;

use crate::engine::config::{LrSchedule, TrainConfig};

/// Which groups the session file wants frozen at each epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct FreezeSchedule {
    /// All groups of the model, input to output.
    groups: Vec<String>,
    initial: Vec<String>,
    unfreeze_at_epoch: Option<usize>,
    gradual_every: Option<usize>,
}

impl FreezeSchedule {
    pub fn new(spec: &TrainConfig) -> Self {
        Self {
            groups: spec
                .model
                .group_names()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            initial: spec.initially_frozen(),
            unfreeze_at_epoch: spec.unfreeze_at_epoch,
            gradual_every: spec.gradual_unfreeze.map(|g| g.every_epochs),
        }
    }

    /// The frozen groups during `epoch` (0-based), in model order.
    pub fn frozen_at(&self, epoch: usize) -> Vec<String> {
        let mut frozen: Vec<String> = self
            .groups
            .iter()
            .filter(|g| self.initial.contains(g))
            .cloned()
            .collect();
        if self.unfreeze_at_epoch.is_some_and(|at| epoch >= at) {
            frozen.clear();
        }
        if let Some(every) = self.gradual_every {
            // Top-down: the frozen group nearest the head thaws first.
            let thawed = epoch / every;
            let keep = frozen.len().saturating_sub(thawed);
            frozen.truncate(keep);
        }
        frozen
    }
}

/// Everything that sets a group's learning rate at a step.
#[derive(Debug, Clone)]
pub struct LrPlan {
    base: f64,
    schedule: LrSchedule,
    total_steps: usize,
    steps_per_epoch: usize,
    step_epochs: usize,
    step_gamma: f64,
    group_lr: BTreeMap<String, f64>,
    warmup_steps: usize,
}

impl LrPlan {
    pub fn new(spec: &TrainConfig, steps_per_epoch: usize) -> Self {
        Self {
            base: spec.lr,
            schedule: spec.lr_schedule,
            total_steps: (spec.epochs * steps_per_epoch).max(1),
            steps_per_epoch: steps_per_epoch.max(1),
            step_epochs: spec.lr_step_epochs.unwrap_or((spec.epochs / 3).max(1)),
            step_gamma: spec.lr_step_gamma,
            group_lr: spec.group_lr.clone(),
            warmup_steps: spec.warmup_steps,
        }
    }

    /// The schedule's rate at `step`, before group multipliers.
    pub fn scheduled(&self, step: usize) -> f64 {
        match self.schedule {
            LrSchedule::Constant => self.base,
            LrSchedule::Cosine => {
                let t = (step as f64 / self.total_steps as f64).min(1.0);
                self.base * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
            LrSchedule::Step => {
                let epoch = step / self.steps_per_epoch;
                self.base * self.step_gamma.powi((epoch / self.step_epochs) as i32)
            }
        }
    }

    /// The rate of `group` at `step`, given the user's multiplier and when the group last thawed.
    pub fn group_rate(
        &self,
        group: &str,
        step: usize,
        multiplier: f64,
        thawed_at: Option<usize>,
    ) -> f64 {
        let group_mult = self.group_lr.get(group).copied().unwrap_or(1.0);
        let warmup = match thawed_at {
            Some(at) if self.warmup_steps > 0 => {
                ((step.saturating_sub(at) + 1) as f64 / self.warmup_steps as f64).min(1.0)
            }
            _ => 1.0,
        };
        self.scheduled(step) * group_mult * multiplier * warmup
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::config::GradualUnfreeze;
    use crate::engine::model::ModelKind;

    fn spec() -> TrainConfig {
        TrainConfig {
            model: ModelKind::RESNET_MINI,
            epochs: 6,
            ..TrainConfig::default()
        }
    }

    #[test]
    fn freeze_then_unfreeze_at_epoch() {
        let s = FreezeSchedule::new(&TrainConfig {
            freeze: vec!["layer1".into(), "stem".into()],
            unfreeze_at_epoch: Some(2),
            ..spec()
        });
        assert_eq!(s.frozen_at(0), ["stem", "layer1"]);
        assert_eq!(s.frozen_at(1), ["stem", "layer1"]);
        assert!(s.frozen_at(2).is_empty());
    }

    #[test]
    fn gradual_unfreezing_thaws_from_the_head_down() {
        let s = FreezeSchedule::new(&TrainConfig {
            gradual_unfreeze: Some(GradualUnfreeze { every_epochs: 2 }),
            ..spec()
        });
        assert_eq!(
            s.frozen_at(0),
            ["stem", "layer1", "layer2", "layer3", "layer4"]
        );
        assert_eq!(s.frozen_at(2), ["stem", "layer1", "layer2", "layer3"]);
        assert_eq!(s.frozen_at(5), ["stem", "layer1", "layer2"]);
        assert!(s.frozen_at(10).is_empty());
    }

    #[test]
    fn schedules_and_multipliers() {
        let mut spec = spec();
        spec.lr = 1.0;
        spec.lr_schedule = LrSchedule::Cosine;
        let plan = LrPlan::new(&spec, 10);
        assert!((plan.scheduled(0) - 1.0).abs() < 1e-12);
        assert!((plan.scheduled(30) - 0.5).abs() < 1e-12);
        spec.lr_schedule = LrSchedule::Step;
        spec.lr_step_epochs = Some(2);
        let plan = LrPlan::new(&spec, 10);
        assert!((plan.scheduled(19) - 1.0).abs() < 1e-12);
        assert!((plan.scheduled(20) - 0.1).abs() < 1e-12);
        spec.lr_schedule = LrSchedule::Constant;
        spec.group_lr.insert("stem".into(), 0.1);
        spec.warmup_steps = 4;
        let plan = LrPlan::new(&spec, 10);
        assert!((plan.group_rate("stem", 5, 2.0, None) - 0.2).abs() < 1e-12);
        assert!((plan.group_rate("head", 5, 1.0, Some(5)) - 0.25).abs() < 1e-12);
        assert!((plan.group_rate("head", 8, 1.0, Some(5)) - 1.0).abs() < 1e-12);
    }
}
