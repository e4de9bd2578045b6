//! Layers the families build alike: convolutions with torchvision's initialisation and
//! BatchNorm with a family's epsilon and momentum.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, Linear, LinearConfig};
use burn::prelude::*;

/// torchvision initialises convolutions with Kaiming normal (fan out, ReLU gain).
pub(super) fn kaiming_conv(config: Conv2dConfig, device: &Device) -> Conv2d {
    config
        .with_initializer(Initializer::KaimingNormal {
            gain: 2f64.sqrt(),
            fan_out_only: true,
        })
        .init(device)
}

/// A Linear layer initialised from N(0, std) with zero bias, as torchvision's VGG, MobileNet
/// (0.01) and ConvNeXt (0.02) are.
pub(super) fn normal_linear(inputs: usize, outputs: usize, std: f64, device: &Device) -> Linear {
    LinearConfig::new(inputs, outputs)
        .with_initializer(Initializer::Normal { mean: 0.0, std })
        .init(device)
}

/// BatchNorm with PyTorch's meaning of `momentum` (the weight of the new batch).
pub(super) fn batch_norm(
    channels: usize,
    epsilon: f64,
    momentum: f64,
    device: &Device,
) -> BatchNorm {
    BatchNormConfig::new(channels)
        .with_epsilon(epsilon)
        .with_momentum(momentum)
        .init(device)
}
