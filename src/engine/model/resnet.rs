//! ResNet, ResNeXt and Wide ResNet with torchvision's layout and parameter names (conv1, bn1,
//! layer1..layer4, fc), which timm's ResNets share.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::classifier::{Classifier, Layout, ModelShape};
use super::layers::{batch_norm, kaiming_conv};
use super::tensors::torchvision_name;

/// Layer groups of the ResNet family, in order from input to output.
pub(super) const GROUPS: &[(&str, &str)] = &[
    ("stem", r"^(conv1|bn1)\."),
    ("layer1", r"^layer1\."),
    ("layer2", r"^layer2\."),
    ("layer3", r"^layer3\."),
    ("layer4", r"^layer4\."),
    ("head", r"^fc\."),
];

/// torchvision's two residual blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// Two 3x3 convolutions (resnet18, resnet34).
    Basic,
    /// 1x1 down, 3x3 (grouped in ResNeXt), 1x1 up to four times the width (resnet50 and up).
    Bottleneck,
}

/// The shape of a ResNet: its block, the planes and depth of each stage, and torchvision's
/// `groups` and `width_per_group` (ResNeXt's cardinality and Wide ResNet's width).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResNetShape {
    pub block: BlockKind,
    pub widths: [usize; 4],
    pub blocks: [usize; 4],
    pub groups: usize,
    pub width_per_group: usize,
}

impl ResNetShape {
    const PLANES: [usize; 4] = [64, 128, 256, 512];

    const fn basic(blocks: [usize; 4]) -> Self {
        Self::bottleneck(blocks, 1, 64).with(BlockKind::Basic)
    }

    const fn bottleneck(blocks: [usize; 4], groups: usize, width_per_group: usize) -> Self {
        Self {
            block: BlockKind::Bottleneck,
            widths: Self::PLANES,
            blocks,
            groups,
            width_per_group,
        }
    }

    const fn with(self, block: BlockKind) -> Self {
        Self { block, ..self }
    }

    pub const RESNET18: Self = Self::basic([2, 2, 2, 2]);
    pub const RESNET34: Self = Self::basic([3, 4, 6, 3]);
    pub const RESNET50: Self = Self::bottleneck([3, 4, 6, 3], 1, 64);
    pub const RESNET101: Self = Self::bottleneck([3, 4, 23, 3], 1, 64);
    pub const RESNET152: Self = Self::bottleneck([3, 8, 36, 3], 1, 64);
    pub const RESNEXT50_32X4D: Self = Self::bottleneck([3, 4, 6, 3], 32, 4);
    pub const RESNEXT101_32X8D: Self = Self::bottleneck([3, 4, 23, 3], 32, 8);
    pub const WIDE_RESNET50_2: Self = Self::bottleneck([3, 4, 6, 3], 1, 128);
    /// resnet18's shape at a quarter of its widths, for CPU demos and tests.
    pub const MINI: Self = Self {
        widths: [16, 32, 64, 128],
        ..Self::RESNET18
    };

    /// Output channels of a block of `planes`.
    fn expansion(self) -> usize {
        match self.block {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// torchvision's BasicBlock (conv1, conv2) or Bottleneck (conv1, conv2, conv3); `downsample`
/// is its `Sequential(conv, bn)`, so paths read `layer2.0.downsample.0.weight` as in a
/// torchvision state dict.
#[derive(Module, Debug)]
pub struct Block {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub conv2: Conv2d,
    pub bn2: BatchNorm,
    pub conv3: Option<Conv2d>,
    pub bn3: Option<BatchNorm>,
    pub downsample: Option<(Conv2d, BatchNorm)>,
}

/// ResNet as torchvision builds it (the stride on the 3x3 convolution, "ResNet v1.5").
#[derive(Module, Debug)]
pub struct ResNet {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub maxpool: MaxPool2d,
    pub layer1: Vec<Block>,
    pub layer2: Vec<Block>,
    pub layer3: Vec<Block>,
    pub layer4: Vec<Block>,
    pub avgpool: AdaptiveAvgPool2d,
    pub fc: Linear,
}

fn conv(channels: [usize; 2], kernel: usize, stride: usize, device: &Device) -> Conv2d {
    grouped_conv(channels, kernel, stride, 1, device)
}

fn grouped_conv(
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    groups: usize,
    device: &Device,
) -> Conv2d {
    kaiming_conv(
        Conv2dConfig::new(channels, [kernel, kernel])
            .with_stride([stride, stride])
            .with_groups(groups)
            .with_padding(PaddingConfig2d::Explicit(
                kernel / 2,
                kernel / 2,
                kernel / 2,
                kernel / 2,
            ))
            .with_bias(false),
        device,
    )
}

fn norm(channels: usize, device: &Device) -> BatchNorm {
    batch_norm(channels, 1e-5, 0.1, device)
}

impl Block {
    fn new(
        shape: ResNetShape,
        in_ch: usize,
        planes: usize,
        stride: usize,
        device: &Device,
    ) -> Self {
        let out_ch = planes * shape.expansion();
        let downsample = (stride != 1 || in_ch != out_ch).then(|| {
            (
                conv([in_ch, out_ch], 1, stride, device),
                norm(out_ch, device),
            )
        });
        match shape.block {
            BlockKind::Basic => Self {
                conv1: conv([in_ch, planes], 3, stride, device),
                bn1: norm(planes, device),
                conv2: conv([planes, planes], 3, 1, device),
                bn2: norm(planes, device),
                conv3: None,
                bn3: None,
                downsample,
            },
            BlockKind::Bottleneck => {
                let width = planes * shape.width_per_group / 64 * shape.groups;
                Self {
                    conv1: conv([in_ch, width], 1, 1, device),
                    bn1: norm(width, device),
                    conv2: grouped_conv([width, width], 3, stride, shape.groups, device),
                    bn2: norm(width, device),
                    conv3: Some(conv([width, out_ch], 1, 1, device)),
                    bn3: Some(norm(out_ch, device)),
                    downsample,
                }
            }
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some((conv, bn)) => bn.forward(conv.forward(x.clone())),
            None => x.clone(),
        };
        let out = relu(self.bn1.forward(self.conv1.forward(x)));
        let mut out = self.bn2.forward(self.conv2.forward(out));
        if let (Some(conv3), Some(bn3)) = (&self.conv3, &self.bn3) {
            out = bn3.forward(conv3.forward(relu(out)));
        }
        relu(out + identity)
    }
}

fn stage(
    shape: ResNetShape,
    in_ch: usize,
    planes: usize,
    blocks: usize,
    stride: usize,
    device: &Device,
) -> Vec<Block> {
    let out_ch = planes * shape.expansion();
    (0..blocks)
        .map(|i| match i {
            0 => Block::new(shape, in_ch, planes, stride, device),
            _ => Block::new(shape, out_ch, planes, 1, device),
        })
        .collect()
}

impl ResNet {
    /// A freshly initialised ResNet (uses the device's random state: seed it first).
    pub fn new(shape: ResNetShape, model: ModelShape, device: &Device) -> Self {
        let [p1, p2, p3, p4] = shape.widths;
        let [b1, b2, b3, b4] = shape.blocks;
        let e = shape.expansion();
        Self {
            conv1: conv([model.in_channels, p1], 7, 2, device),
            bn1: norm(p1, device),
            maxpool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            layer1: stage(shape, p1, p1, b1, 1, device),
            layer2: stage(shape, p1 * e, p2, b2, 2, device),
            layer3: stage(shape, p2 * e, p3, b3, 2, device),
            layer4: stage(shape, p3 * e, p4, b4, 2, device),
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc: LinearConfig::new(p4 * e, model.classes).init(device),
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

    /// timm's ResNets use torchvision's names.
    fn layout_name(&self, layout: Layout, path: &str) -> Option<String> {
        match layout {
            Layout::Torchvision | Layout::Timm => Some(torchvision_name(path)),
        }
    }
}
