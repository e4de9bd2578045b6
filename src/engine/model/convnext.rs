//! ConvNeXt-Tiny/Small/Base/Large as torchvision builds them (LayerNorm, layer scale,
//! stochastic depth), with torchvision's and timm's names. Fields follow timm's layout, which
//! puts each downsampling at the start of the stage it feeds.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::gelu;

use super::classifier::{Classifier, Layout, ModelShape};
use super::layers::normal_linear;
use super::mbconv::StochasticDepth;
use super::tensors::torchvision_name;

/// Layer groups of the ConvNeXt family, in order from input to output.
pub(super) const GROUPS: &[(&str, &str)] = &[
    ("stem", r"^stem\."),
    ("stage1", r"^stages\.0\."),
    ("stage2", r"^stages\.1\."),
    ("stage3", r"^stages\.2\."),
    ("stage4", r"^stages\.3\."),
    ("head", r"^head\."),
];

/// Widths and depths of the four stages, and the stochastic depth of the last block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConvNextShape {
    pub widths: [usize; 4],
    pub depths: [usize; 4],
    pub stochastic_depth: f64,
}

impl Eq for ConvNextShape {}

impl ConvNextShape {
    pub const TINY: Self = Self {
        widths: [96, 192, 384, 768],
        depths: [3, 3, 9, 3],
        stochastic_depth: 0.1,
    };
    pub const SMALL: Self = Self {
        widths: [96, 192, 384, 768],
        depths: [3, 3, 27, 3],
        stochastic_depth: 0.4,
    };
    pub const BASE: Self = Self {
        widths: [128, 256, 512, 1024],
        depths: [3, 3, 27, 3],
        stochastic_depth: 0.5,
    };
    pub const LARGE: Self = Self {
        widths: [192, 384, 768, 1536],
        depths: [3, 3, 27, 3],
        stochastic_depth: 0.5,
    };
}

/// torchvision's `LayerNorm2d`: LayerNorm over the channels of an `[N, C, H, W]` tensor.
#[derive(Module, Debug)]
pub struct ChannelNorm {
    pub norm: LayerNorm,
}

impl ChannelNorm {
    fn new(channels: usize, device: &Device) -> Self {
        Self {
            norm: layer_norm(channels, device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.norm
            .forward(x.permute([0, 2, 3, 1]))
            .permute([0, 3, 1, 2])
    }
}

fn layer_norm(channels: usize, device: &Device) -> LayerNorm {
    LayerNormConfig::new(channels)
        .with_epsilon(1e-6)
        .init(device)
}

/// torchvision initialises ConvNeXt's convolutions and Linear layers from N(0, 0.02) (its
/// truncation at +-2 is a hundred deviations out) with zero bias.
const INIT: Initializer = Initializer::Normal {
    mean: 0.0,
    std: 0.02,
};

fn conv(
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    groups: usize,
    device: &Device,
) -> Conv2d {
    let pad = match stride {
        1 => kernel / 2,
        _ => 0,
    };
    Conv2dConfig::new(channels, [kernel, kernel])
        .with_stride([stride, stride])
        .with_groups(groups)
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_initializer(INIT)
        .init(device)
}

fn linear(inputs: usize, outputs: usize, device: &Device) -> Linear {
    normal_linear(inputs, outputs, 0.02, device)
}

/// The patchify stem: a 4x4 convolution of stride 4 and a channel LayerNorm.
#[derive(Module, Debug)]
pub struct Stem {
    pub conv: Conv2d,
    pub norm: ChannelNorm,
}

/// Halving between stages: a channel LayerNorm and a 2x2 convolution of stride 2.
#[derive(Module, Debug)]
pub struct Downsample {
    pub norm: ChannelNorm,
    pub conv: Conv2d,
}

/// torchvision's `CNBlock`: depthwise 7x7, LayerNorm, Linear up 4x, GELU, Linear down, layer
/// scale, stochastic depth, residual.
#[derive(Module, Debug)]
pub struct ConvNextBlock {
    pub dwconv: Conv2d,
    pub norm: LayerNorm,
    pub pwconv1: Linear,
    pub pwconv2: Linear,
    /// `[C, 1, 1]`, as torchvision holds it (timm's `gamma` is `[C]`).
    pub layer_scale: Param<Tensor<3>>,
    pub drop_path: StochasticDepth,
}

impl ConvNextBlock {
    fn new(dim: usize, drop: f64, device: &Device) -> Self {
        Self {
            dwconv: conv([dim, dim], 7, 1, dim, device),
            norm: layer_norm(dim, device),
            pwconv1: linear(dim, 4 * dim, device),
            pwconv2: linear(4 * dim, dim, device),
            layer_scale: Param::from_tensor(Tensor::full([dim, 1, 1], 1e-6, device)),
            drop_path: StochasticDepth::new(drop),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.dwconv.forward(x.clone()).permute([0, 2, 3, 1]);
        let y = self
            .pwconv2
            .forward(gelu(self.pwconv1.forward(self.norm.forward(y))));
        let y = y.permute([0, 3, 1, 2]) * self.layer_scale.val().unsqueeze::<4>();
        self.drop_path.forward(y) + x
    }
}

#[derive(Module, Debug)]
pub struct ConvNextStage {
    pub downsample: Option<Downsample>,
    pub blocks: Vec<ConvNextBlock>,
}

/// The classifier: a channel LayerNorm over the pooled features and a Linear layer.
#[derive(Module, Debug)]
pub struct ConvNextHead {
    pub norm: LayerNorm,
    pub fc: Linear,
}

#[derive(Module, Debug)]
pub struct ConvNext {
    pub stem: Stem,
    pub stages: Vec<ConvNextStage>,
    pub head: ConvNextHead,
}

impl ConvNext {
    /// A freshly initialised ConvNeXt (uses the device's random state: seed it first).
    pub fn new(shape: ConvNextShape, model: ModelShape, device: &Device) -> Self {
        let [first, ..] = shape.widths;
        let total: usize = shape.depths.iter().sum();
        let mut index = 0;
        let stages = (0..4)
            .map(|s| {
                let dim = shape.widths[s];
                let downsample = (s > 0).then(|| Downsample {
                    norm: ChannelNorm::new(shape.widths[s - 1], device),
                    conv: conv([shape.widths[s - 1], dim], 2, 2, 1, device),
                });
                let blocks = (0..shape.depths[s])
                    .map(|_| {
                        // torchvision: linear from 0 at the first block to the last's.
                        let drop = shape.stochastic_depth * index as f64 / (total - 1) as f64;
                        index += 1;
                        ConvNextBlock::new(dim, drop, device)
                    })
                    .collect();
                ConvNextStage { downsample, blocks }
            })
            .collect();
        let last = shape.widths[3];
        Self {
            stem: Stem {
                conv: conv([model.in_channels, first], 4, 4, 1, device),
                norm: ChannelNorm::new(first, device),
            },
            stages,
            head: ConvNextHead {
                norm: layer_norm(last, device),
                fc: linear(last, model.classes, device),
            },
        }
    }
}

impl Classifier for ConvNext {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = self.stem.norm.forward(self.stem.conv.forward(images));
        for stage in &self.stages {
            if let Some(down) = &stage.downsample {
                x = down.conv.forward(down.norm.forward(x));
            }
            for block in &stage.blocks {
                x = block.forward(x);
            }
        }
        let x = x.mean_dim(2).mean_dim(3).flatten::<2>(1, 3);
        self.head.fc.forward(self.head.norm.forward(x))
    }

    fn layout_name(&self, layout: Layout, path: &str) -> Option<String> {
        let name = torchvision_name(path);
        // LayerNorm inside ChannelNorm is one module in both layouts.
        let name = name.replace(".norm.norm.", ".norm.");
        let (first, rest) = name.split_once('.')?;
        match (layout, first) {
            (Layout::Torchvision, "stem") => Some(format!(
                "features.0.{}",
                rest.replacen("conv.", "0.", 1).replacen("norm.", "1.", 1)
            )),
            (Layout::Timm, "stem") => Some(format!(
                "stem.{}",
                rest.replacen("conv.", "0.", 1).replacen("norm.", "1.", 1)
            )),
            (_, "stages") => stage_name(layout, rest),
            (Layout::Torchvision, "head") => Some(format!(
                "classifier.{}",
                rest.replacen("norm.", "0.", 1).replacen("fc.", "2.", 1)
            )),
            (Layout::Timm, "head") => Some(name),
            _ => None,
        }
    }

    fn layout_shape(&self, layout: Layout, path: &str, shape: Vec<usize>) -> Vec<usize> {
        match layout == Layout::Timm && path.ends_with(".layer_scale") {
            true => shape[..1].to_vec(),
            false => shape,
        }
    }
}

/// A name under `stages.` in `layout` (`rest` is `1.blocks.0.dwconv.weight`).
fn stage_name(layout: Layout, rest: &str) -> Option<String> {
    let (stage, rest) = rest.split_once('.')?;
    let s: usize = stage.parse().ok()?;
    let (part, rest) = rest.split_once('.')?;
    let timm = layout == Layout::Timm;
    if part == "downsample" {
        let inner = rest.replacen("norm.", "0.", 1).replacen("conv.", "1.", 1);
        return Some(match timm {
            true => format!("stages.{s}.downsample.{inner}"),
            false => format!("features.{}.{inner}", 2 * s),
        });
    }
    let (block, rest) = rest.split_once('.')?;
    let (layer, tail) = rest.split_once('.').unwrap_or((rest, ""));
    let renamed = match (timm, layer) {
        (true, "dwconv") => format!("conv_dw.{tail}"),
        (true, "norm") => format!("norm.{tail}"),
        (true, "pwconv1") => format!("mlp.fc1.{tail}"),
        (true, "pwconv2") => format!("mlp.fc2.{tail}"),
        (true, "layer_scale") => "gamma".to_string(),
        (false, "dwconv") => format!("block.0.{tail}"),
        (false, "norm") => format!("block.2.{tail}"),
        (false, "pwconv1") => format!("block.3.{tail}"),
        (false, "pwconv2") => format!("block.5.{tail}"),
        (false, "layer_scale") => "layer_scale".to_string(),
        _ => return None,
    };
    Some(match timm {
        true => format!("stages.{s}.blocks.{block}.{renamed}"),
        false => format!("features.{}.{block}.{renamed}", 2 * s + 1),
    })
}
