//! One optimisation step: batch to tensors, loss, gradients of the trainable groups, update.

use burn::module::{ModuleVisitor, Param, ParamGroup};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::lr_scheduler::module_lr_scheduler::{ModuleLearningRate, ModuleLrScheduler};
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::prelude::*;
use burn::tensor::FloatDType;
use burn::tensor::activation::log_softmax;

use crate::engine::config::{OptimizerKind, TrainConfig};
use crate::engine::data::Batch;

/// The optimizer a run's spec asks for.
pub fn optimizer(spec: &TrainConfig) -> ModuleOptimizer {
    let decay = spec
        .weight_decay
        .filter(|w| *w > 0.0)
        .map(|w| WeightDecayConfig::new(w as f32));
    match spec.optimizer {
        OptimizerKind::Sgd => SgdConfig::new()
            .with_momentum((spec.momentum > 0.0).then(|| {
                MomentumConfig::new()
                    .with_momentum(spec.momentum)
                    .with_dampening(0.0)
            }))
            .with_weight_decay(decay)
            .init(),
        OptimizerKind::Adam => AdamConfig::new().with_weight_decay(decay).init(),
        OptimizerKind::AdamW => AdamWConfig::new()
            .with_weight_decay(spec.weight_decay.unwrap_or(0.01) as f32)
            .init(),
    }
}

/// Per-group rates for one step, through burn's module scheduler: each group gets a constant
/// rate that thaw computes from the schedule, the group's multiplier and its warmup.
pub fn module_rates(groups: &[(ParamGroup, f64)], default: f64) -> ModuleLearningRate {
    let mut sched = ModuleLrScheduler::new(default);
    for (group, rate) in groups {
        sched = sched.with_group(group.clone(), *rate);
    }
    sched.step()
}

/// The images and labels of a batch as tensors on `device`.
pub fn tensors(batch: Batch, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let n = batch.labels.len();
    let images = Tensor::<4>::from_data(TensorData::new(batch.images, batch.shape), device);
    let labels = Tensor::<1, Int>::from_data(TensorData::new(batch.labels, [n]), device);
    (images, labels)
}

/// Mean cross-entropy of `logits` against `labels`, and the number of correct top-1 guesses.
pub fn loss_and_correct(logits: Tensor<2>, labels: Tensor<1, Int>) -> (Tensor<1>, usize) {
    let [n, _] = logits.dims();
    let correct = logits
        .clone()
        .argmax(1)
        .reshape([n])
        .equal(labels.clone())
        .int()
        .sum()
        .into_scalar::<i64>();
    let picked = log_softmax(logits, 1).gather(1, labels.reshape([n, 1]));
    (picked.mean().neg(), correct.max(0) as usize)
}

/// Gradients of the loss for the parameters that require them (frozen groups have none).
pub fn gradients<M: Module>(loss: &Tensor<1>, model: &M) -> GradientsParams {
    GradientsParams::from_grads(loss.backward(), model)
}

/// Scales the gradients down so that their global L2 norm (over every parameter that has one:
/// frozen groups have none) is at most `max_norm`, as PyTorch's `clip_grad_norm_` does:
/// `g *= min(1, max_norm / (norm + 1e-6))`. The sum of squares is taken in f32 whatever the
/// run's precision, so that f16 gradients cannot overflow it.
pub fn clip_grad_norm<M: Module>(grads: &mut GradientsParams, model: &M, max_norm: f64) -> Clip {
    let mut squares = SumOfSquares { grads, sum: None };
    model.visit(&mut squares);
    let Some(sum) = squares.sum else {
        return Clip {
            norm: 0.0,
            scaled: false,
        };
    };
    let norm = f64::from(sum.sqrt().into_scalar::<f32>());
    let factor = max_norm / (norm + 1e-6);
    // A norm that is not finite is left alone: the loss that follows says so, and the run
    // goes back to its last good weights.
    let scaled = norm.is_finite() && factor < 1.0;
    if scaled {
        model.visit(&mut Scale { grads, factor });
    }
    Clip { norm, scaled }
}

/// What [`clip_grad_norm`] found and did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clip {
    /// The global norm before clipping.
    pub norm: f64,
    /// Whether the gradients were scaled down.
    pub scaled: bool,
}

struct SumOfSquares<'a> {
    grads: &'a GradientsParams,
    sum: Option<Tensor<1>>,
}

impl ModuleVisitor for SumOfSquares<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.get::<D>(param.id) {
            let squares = grad.cast(FloatDType::F32).square().sum();
            self.sum = Some(match self.sum.take() {
                Some(sum) => sum + squares,
                None => squares,
            });
        }
    }
}

struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: f64,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, grad.mul_scalar(self.factor));
        }
    }
}
