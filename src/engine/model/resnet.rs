//! ResNet with torchvision's layout and parameter names (conv1, bn1, layer1..layer4, fc).

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::{Classifier, ModelShape};

/// Layer groups of the ResNet family, in order from input to output.
pub(super) const GROUPS: &[(&str, &str)] = &[
    ("stem", r"^(conv1|bn1)\."),
    ("layer1", r"^layer1\."),
    ("layer2", r"^layer2\."),
    ("layer3", r"^layer3\."),
    ("layer4", r"^layer4\."),
    ("head", r"^fc\."),
];

/// Widths and depths of a ResNet built from BasicBlocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResNetShape {
    pub widths: [usize; 4],
    pub blocks: [usize; 4],
}

impl ResNetShape {
    pub const RESNET18: Self = Self {
        widths: [64, 128, 256, 512],
        blocks: [2, 2, 2, 2],
    };
    pub const RESNET34: Self = Self {
        widths: [64, 128, 256, 512],
        blocks: [3, 4, 6, 3],
    };
    /// resnet18's shape at a quarter of its widths, for CPU demos and tests.
    pub const MINI: Self = Self {
        widths: [16, 32, 64, 128],
        blocks: [2, 2, 2, 2],
    };
}

/// torchvision's BasicBlock; `downsample` is its `Sequential(conv, bn)`, so paths read
/// `layer2.0.downsample.0.weight` as in a torchvision state dict.
#[derive(Module, Debug)]
pub struct BasicBlock {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub conv2: Conv2d,
    pub bn2: BatchNorm,
    pub downsample: Option<(Conv2d, BatchNorm)>,
}

/// ResNet with BasicBlocks, as torchvision's resnet18 and resnet34.
#[derive(Module, Debug)]
pub struct ResNet {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub maxpool: MaxPool2d,
    pub layer1: Vec<BasicBlock>,
    pub layer2: Vec<BasicBlock>,
    pub layer3: Vec<BasicBlock>,
    pub layer4: Vec<BasicBlock>,
    pub avgpool: AdaptiveAvgPool2d,
    pub fc: Linear,
}

/// torchvision initialises convolutions with Kaiming normal (fan out, ReLU gain).
fn conv(channels: [usize; 2], kernel: usize, stride: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new(channels, [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(
            kernel / 2,
            kernel / 2,
            kernel / 2,
            kernel / 2,
        ))
        .with_bias(false)
        .with_initializer(Initializer::KaimingNormal {
            gain: 2f64.sqrt(),
            fan_out_only: true,
        })
        .init(device)
}

fn norm(channels: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels).init(device)
}

impl BasicBlock {
    fn new(in_ch: usize, out_ch: usize, stride: usize, device: &Device) -> Self {
        let downsample = (stride != 1 || in_ch != out_ch).then(|| {
            (
                conv([in_ch, out_ch], 1, stride, device),
                norm(out_ch, device),
            )
        });
        Self {
            conv1: conv([in_ch, out_ch], 3, stride, device),
            bn1: norm(out_ch, device),
            conv2: conv([out_ch, out_ch], 3, 1, device),
            bn2: norm(out_ch, device),
            downsample,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some((conv, bn)) => bn.forward(conv.forward(x.clone())),
            None => x.clone(),
        };
        let out = relu(self.bn1.forward(self.conv1.forward(x)));
        let out = self.bn2.forward(self.conv2.forward(out));
        relu(out + identity)
    }
}

fn stage(
    in_ch: usize,
    out_ch: usize,
    blocks: usize,
    stride: usize,
    device: &Device,
) -> Vec<BasicBlock> {
    (0..blocks)
        .map(|i| match i {
            0 => BasicBlock::new(in_ch, out_ch, stride, device),
            _ => BasicBlock::new(out_ch, out_ch, 1, device),
        })
        .collect()
}

impl ResNet {
    /// A freshly initialised ResNet (uses the device's random state: seed it first).
    pub fn new(shape: ResNetShape, model: ModelShape, device: &Device) -> Self {
        let [w1, w2, w3, w4] = shape.widths;
        let [b1, b2, b3, b4] = shape.blocks;
        Self {
            conv1: conv([model.in_channels, w1], 7, 2, device),
            bn1: norm(w1, device),
            maxpool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            layer1: stage(w1, w1, b1, 1, device),
            layer2: stage(w1, w2, b2, 2, device),
            layer3: stage(w2, w3, b3, 2, device),
            layer4: stage(w3, w4, b4, 2, device),
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc: LinearConfig::new(w4, model.classes).init(device),
        }
    }
}

impl Classifier for ResNet {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let x = relu(self.bn1.forward(self.conv1.forward(images)));
        let mut x = self.maxpool.forward(x);
        for block in self
            .layer1
            .iter()
            .chain(&self.layer2)
            .chain(&self.layer3)
            .chain(&self.layer4)
        {
            x = block.forward(x);
        }
        let x = self.avgpool.forward(x);
        let [n, c, _, _] = x.dims();
        self.fc.forward(x.reshape([n, c]))
    }
}
