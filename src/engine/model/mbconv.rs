//! The inverted-residual block that MobileNetV2, MobileNetV3 and EfficientNet share: an
//! optional 1x1 expansion, a depthwise convolution, optional squeeze-and-excitation, a 1x1
//! projection, and a residual when the shape allows it. Fused blocks (EfficientNetV2) replace
//! the expansion and depthwise pair with one full convolution.

use burn::module::{Flag, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, Dropout, Linear, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::{hard_sigmoid, hard_swish, relu, relu6, sigmoid, silu};

use super::layers::{batch_norm, kaiming_conv};

/// The non-linearity after a convolution's normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    None,
    Relu,
    Relu6,
    HardSwish,
    Silu,
}

impl Activation {
    pub(super) fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Self::None => x,
            Self::Relu => relu(x),
            Self::Relu6 => relu6(x),
            Self::HardSwish => hard_swish(x),
            Self::Silu => silu(x),
        }
    }
}

/// BatchNorm settings of a family: torchvision's MobileNetV3 and EfficientNetV2 use
/// `eps = 1e-3`, MobileNetV3 `momentum = 0.01`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Norm {
    pub epsilon: f64,
    pub momentum: f64,
}

impl Norm {
    pub const TORCH: Self = Self {
        epsilon: 1e-5,
        momentum: 0.1,
    };
}

/// torchvision's `Conv2dNormActivation`: a bias-free convolution, BatchNorm, an activation.
#[derive(Module, Debug)]
pub struct ConvNormAct {
    pub conv: Conv2d,
    pub bn: BatchNorm,
    #[module(skip)]
    pub act: Activation,
}

/// A convolution's shape: channels, kernel, stride and groups.
#[derive(Debug, Clone, Copy)]
pub struct ConvSpec {
    pub channels: [usize; 2],
    pub kernel: usize,
    pub stride: usize,
    pub groups: usize,
}

impl ConvSpec {
    pub fn new(channels: [usize; 2], kernel: usize, stride: usize) -> Self {
        Self {
            channels,
            kernel,
            stride,
            groups: 1,
        }
    }

    pub fn depthwise(channels: usize, kernel: usize, stride: usize) -> Self {
        Self {
            groups: channels,
            ..Self::new([channels, channels], kernel, stride)
        }
    }
}

impl ConvNormAct {
    /// PyTorch's symmetric padding of `(kernel - 1) / 2`.
    pub fn new(spec: ConvSpec, norm: Norm, act: Activation, device: &Device) -> Self {
        let pad = (spec.kernel - 1) / 2;
        let config = Conv2dConfig::new(spec.channels, [spec.kernel, spec.kernel])
            .with_stride([spec.stride, spec.stride])
            .with_groups(spec.groups)
            .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
            .with_bias(false);
        Self {
            conv: kaiming_conv(config, device),
            bn: batch_norm(spec.channels[1], norm.epsilon, norm.momentum, device),
            act,
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.act.apply(self.bn.forward(self.conv.forward(x)))
    }

    /// torchvision's name within a `Conv2dNormActivation` of `rest` (`conv.weight` is
    /// `0.weight`, `bn.bias` is `1.bias`).
    pub fn unit_name(rest: &str) -> Option<String> {
        match rest.split_once('.')? {
            ("conv", tail) => Some(format!("0.{tail}")),
            ("bn", tail) => Some(format!("1.{tail}")),
            _ => None,
        }
    }
}

/// How squeeze-and-excitation gates: MobileNetV3 with ReLU then hard sigmoid, EfficientNet
/// with SiLU then sigmoid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    HardSigmoid,
    Sigmoid,
}

/// torchvision's `SqueezeExcitation`: pool, 1x1 down (`fc1`), activation, 1x1 up (`fc2`),
/// gate, scale.
#[derive(Module, Debug)]
pub struct SqueezeExcite {
    pub fc1: Conv2d,
    pub fc2: Conv2d,
    #[module(skip)]
    pub act: Activation,
    #[module(skip)]
    pub gate: Gate,
}

impl SqueezeExcite {
    pub fn new(
        channels: usize,
        squeeze: usize,
        act: Activation,
        gate: Gate,
        device: &Device,
    ) -> Self {
        let conv = |c: [usize; 2]| kaiming_conv(Conv2dConfig::new(c, [1, 1]), device);
        Self {
            fc1: conv([channels, squeeze]),
            fc2: conv([squeeze, channels]),
            act,
            gate,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let scale = x.clone().mean_dim(2).mean_dim(3);
        let scale = self.fc2.forward(self.act.apply(self.fc1.forward(scale)));
        let scale = match self.gate {
            Gate::HardSigmoid => hard_sigmoid(scale, 1.0 / 6.0, 0.5),
            Gate::Sigmoid => sigmoid(scale),
        };
        x * scale
    }
}

/// torchvision's `StochasticDepth(p, "row")`: while training, drops the residual branch of
/// each sample with probability `prob` and scales the kept ones; off when frozen or at
/// inference.
#[derive(Module, Debug)]
pub struct StochasticDepth {
    pub prob: f64,
    /// Cleared by `freeze_group`, as Dropout's is: a frozen block computes as at inference.
    pub training: Param<Flag>,
}

impl StochasticDepth {
    pub fn new(prob: f64) -> Self {
        Self {
            prob,
            training: Param::from_bool(true),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if !self.training.is_enabled() || !x.device().is_autodiff() || self.prob == 0.0 {
            return x;
        }
        let keep = 1.0 - self.prob;
        let [n, _, _, _] = x.dims();
        let mask = Tensor::<4>::random([n, 1, 1, 1], Distribution::Bernoulli(keep), &x.device());
        (x * mask).div_scalar(keep)
    }
}

/// One inverted-residual block. `expand` is the 1x1 expansion (the full 3x3 convolution in a
/// fused block), `depthwise` is absent in fused blocks, `project` has no activation except in
/// a fused block without expansion, where it is the block's only convolution.
#[derive(Module, Debug)]
pub struct InvertedResidual {
    pub expand: Option<ConvNormAct>,
    pub depthwise: Option<ConvNormAct>,
    pub se: Option<SqueezeExcite>,
    pub project: ConvNormAct,
    pub drop_path: StochasticDepth,
    pub residual: bool,
}

impl InvertedResidual {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut out = x.clone();
        if let Some(expand) = &self.expand {
            out = expand.forward(out);
        }
        if let Some(depthwise) = &self.depthwise {
            out = depthwise.forward(out);
        }
        if let Some(se) = &self.se {
            out = se.forward(out);
        }
        let out = self.project.forward(out);
        match self.residual {
            true => self.drop_path.forward(out) + x,
            false => out,
        }
    }
}

impl InvertedResidual {
    /// torchvision's name, within its `block` sequence, of `part` (`depthwise.conv.weight`):
    /// the parts present are numbered in order, squeeze-and-excitation counting as one.
    pub fn torchvision_part(&self, part: &str) -> Option<String> {
        let (unit, rest) = part.split_once('.')?;
        let index = self.part_index(unit)?;
        match unit {
            "se" => Some(format!("{index}.{rest}")),
            _ => Some(format!("{index}.{}", ConvNormAct::unit_name(rest)?)),
        }
    }

    /// The place of `unit` (`expand`, `depthwise`, `se`, `project`) among the parts present.
    pub fn part_index(&self, unit: &str) -> Option<usize> {
        let parts = [
            ("expand", self.expand.is_some()),
            ("depthwise", self.depthwise.is_some()),
            ("se", self.se.is_some()),
            ("project", true),
        ];
        let at = parts
            .iter()
            .position(|(name, present)| *name == unit && *present)?;
        Some(parts[..at].iter().filter(|(_, present)| *present).count())
    }
}

/// torchvision's classifiers of these families: `Dropout, Linear` (MobileNetV2,
/// EfficientNet) or `Linear, Hardswish, Dropout, Linear` (MobileNetV3, with `hidden`).
#[derive(Module, Debug)]
pub struct ClassifierHead {
    pub hidden: Option<Linear>,
    pub dropout: Dropout,
    pub fc: Linear,
}

impl ClassifierHead {
    /// Class logits from the last blocks' output: the last convolution, global average
    /// pooling, the classifier.
    pub fn forward_features(&self, last: &ConvNormAct, x: Tensor<4>) -> Tensor<2> {
        self.forward(last.forward(x).mean_dim(2).mean_dim(3).flatten::<2>(1, 3))
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let x = match &self.hidden {
            Some(hidden) => hard_swish(hidden.forward(x)),
            None => x,
        };
        self.fc.forward(self.dropout.forward(x))
    }

    /// torchvision's name of `name` (`classifier.fc.weight`): `classifier.1` after the
    /// dropout, or `classifier.0` and `classifier.3` with a hidden layer.
    pub fn torchvision_name(&self, name: &str) -> Option<String> {
        let renamed = match name.strip_prefix("classifier.")?.split_once('.')? {
            ("hidden", tail) => format!("classifier.0.{tail}"),
            ("fc", tail) if self.hidden.is_none() => format!("classifier.1.{tail}"),
            ("fc", tail) => format!("classifier.3.{tail}"),
            _ => return None,
        };
        Some(renamed)
    }
}

/// torchvision's name of a name under the stem (`features.0`) or the last convolution
/// (`features.{last}`), where `name` is under either.
pub fn stem_or_last_name(name: &str, last: usize) -> Option<String> {
    let (index, rest) = match name.split_once('.')? {
        ("stem", rest) => (0, rest),
        ("last", rest) => (last, rest),
        _ => return None,
    };
    Some(format!(
        "features.{index}.{}",
        ConvNormAct::unit_name(rest)?
    ))
}

/// torchvision's `_make_divisible`: `value` rounded to a multiple of `divisor`, never more
/// than 10% below it.
pub fn make_divisible(value: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let rounded = (((value + d / 2.0) as usize) / divisor * divisor).max(divisor);
    match (rounded as f64) < 0.9 * value {
        true => rounded + divisor,
        false => rounded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;

    #[test]
    fn stochastic_depth_drops_whole_rows_while_training_and_nothing_when_frozen() {
        let device = Device::flex().autodiff();
        device.seed(1);
        let depth = StochasticDepth::new(0.5);
        let x = Tensor::<4>::ones([64, 2, 3, 3], &device);
        let rows: Vec<f32> = depth
            .forward(x.clone())
            .mean_dim(1)
            .mean_dim(2)
            .mean_dim(3)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let dropped = rows.iter().filter(|&&v| v == 0.0).count();
        assert!(
            rows.iter().all(|&v| v == 0.0 || v == 2.0),
            "a row is dropped or scaled whole: {rows:?}"
        );
        assert!((10..54).contains(&dropped), "{dropped} of 64 rows dropped");

        let frozen = depth.freeze();
        assert_eq!(
            frozen.forward(x.clone()).into_data(),
            x.into_data(),
            "a frozen block drops nothing"
        );
    }

    #[test]
    fn make_divisible_follows_torchvision() {
        // torchvision.models._utils._make_divisible.
        assert_eq!(make_divisible(16.0 / 4.0, 8), 8);
        assert_eq!(make_divisible(240.0 / 4.0, 8), 64);
        assert_eq!(make_divisible(72.0 / 4.0, 8), 24);
        assert_eq!(make_divisible(32.0 * 1.1, 8), 32);
        assert_eq!(make_divisible(36.0, 8), 40);
    }
}
