//! EfficientNet-B0..B7 and EfficientNetV2-S/M/L as torchvision builds them. Fields follow
//! torchvision's stages (`stages.3.1.depthwise.conv.weight` is its
//! `features.4.1.block.1.0.weight`); the groups join the stages of one resolution.

use burn::nn::{DropoutConfig, Initializer, LinearConfig};
use burn::prelude::*;

use super::classifier::{Classifier, Layout, ModelShape};
use super::mbconv::{
    Activation, ClassifierHead, ConvNormAct, ConvSpec, Gate, InvertedResidual, Norm, SqueezeExcite,
    StochasticDepth, make_divisible, stem_or_last_name,
};
use super::tensors::torchvision_name;

/// Groups of the networks with seven stages (B0..B7, V2-M, V2-L): the stages at 1/16 and at
/// 1/32 of the input are one group each.
pub(super) const GROUPS_7: &[(&str, &str)] = &[
    ("stem", r"^stem\."),
    ("stage1", r"^stages\.0\."),
    ("stage2", r"^stages\.1\."),
    ("stage3", r"^stages\.2\."),
    ("stage4", r"^stages\.(3|4)\."),
    ("stage5", r"^stages\.(5|6)\."),
    ("head", r"^(last|classifier)\."),
];

/// Groups of EfficientNetV2-S, whose six stages end with one at 1/32.
pub(super) const GROUPS_6: &[(&str, &str)] = &[
    ("stem", r"^stem\."),
    ("stage1", r"^stages\.0\."),
    ("stage2", r"^stages\.1\."),
    ("stage3", r"^stages\.2\."),
    ("stage4", r"^stages\.(3|4)\."),
    ("stage5", r"^stages\.5\."),
    ("head", r"^(last|classifier)\."),
];

/// One of torchvision's stage settings: fused (V2's first stages) or not, expansion, kernel,
/// stride, input and output channels, blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage {
    pub fused: bool,
    pub expand: usize,
    pub kernel: usize,
    pub stride: usize,
    pub channels: [usize; 2],
    pub blocks: usize,
}

const fn mb(
    expand: usize,
    kernel: usize,
    stride: usize,
    cin: usize,
    cout: usize,
    blocks: usize,
) -> Stage {
    Stage {
        fused: false,
        expand,
        kernel,
        stride,
        channels: [cin, cout],
        blocks,
    }
}

const fn fused(
    expand: usize,
    kernel: usize,
    stride: usize,
    cin: usize,
    cout: usize,
    blocks: usize,
) -> Stage {
    Stage {
        fused: true,
        ..mb(expand, kernel, stride, cin, cout, blocks)
    }
}

const B: &[Stage] = &[
    mb(1, 3, 1, 32, 16, 1),
    mb(6, 3, 2, 16, 24, 2),
    mb(6, 5, 2, 24, 40, 2),
    mb(6, 3, 2, 40, 80, 3),
    mb(6, 5, 1, 80, 112, 3),
    mb(6, 5, 2, 112, 192, 4),
    mb(6, 3, 1, 192, 320, 1),
];

const V2_S: &[Stage] = &[
    fused(1, 3, 1, 24, 24, 2),
    fused(4, 3, 2, 24, 48, 4),
    fused(4, 3, 2, 48, 64, 4),
    mb(4, 3, 2, 64, 128, 6),
    mb(6, 3, 1, 128, 160, 9),
    mb(6, 3, 2, 160, 256, 15),
];

const V2_M: &[Stage] = &[
    fused(1, 3, 1, 24, 24, 3),
    fused(4, 3, 2, 24, 48, 5),
    fused(4, 3, 2, 48, 80, 5),
    mb(4, 3, 2, 80, 160, 7),
    mb(6, 3, 1, 160, 176, 14),
    mb(6, 3, 2, 176, 304, 18),
    mb(6, 3, 1, 304, 512, 5),
];

const V2_L: &[Stage] = &[
    fused(1, 3, 1, 32, 32, 4),
    fused(4, 3, 2, 32, 64, 7),
    fused(4, 3, 2, 64, 96, 7),
    mb(4, 3, 2, 96, 192, 10),
    mb(6, 3, 1, 192, 224, 19),
    mb(6, 3, 2, 224, 384, 25),
    mb(6, 3, 1, 384, 640, 7),
];

/// A variant: its stages, width and depth multipliers (B1..B7 scale B0's), classifier
/// dropout, last convolution's width (B: four times its input) and BatchNorm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EfficientNetShape {
    pub stages: &'static [Stage],
    pub width: f64,
    pub depth: f64,
    pub dropout: f64,
    pub last_channel: Option<usize>,
    pub norm: Norm,
}

impl Eq for EfficientNetShape {}

/// B5..B7 and V2 use BatchNorm's `eps = 1e-3` (B5..B7 also `momentum = 0.01`).
const NORM_B5: Norm = Norm {
    epsilon: 1e-3,
    momentum: 0.01,
};
const NORM_V2: Norm = Norm {
    epsilon: 1e-3,
    momentum: 0.1,
};

impl EfficientNetShape {
    const fn b(width: f64, depth: f64, dropout: f64, norm: Norm) -> Self {
        Self {
            stages: B,
            width,
            depth,
            dropout,
            last_channel: None,
            norm,
        }
    }

    const fn v2(stages: &'static [Stage], dropout: f64) -> Self {
        Self {
            stages,
            width: 1.0,
            depth: 1.0,
            dropout,
            last_channel: Some(1280),
            norm: NORM_V2,
        }
    }

    pub const B0: Self = Self::b(1.0, 1.0, 0.2, Norm::TORCH);
    pub const B1: Self = Self::b(1.0, 1.1, 0.2, Norm::TORCH);
    pub const B2: Self = Self::b(1.1, 1.2, 0.3, Norm::TORCH);
    pub const B3: Self = Self::b(1.2, 1.4, 0.3, Norm::TORCH);
    pub const B4: Self = Self::b(1.4, 1.8, 0.4, Norm::TORCH);
    pub const B5: Self = Self::b(1.6, 2.2, 0.4, NORM_B5);
    pub const B6: Self = Self::b(1.8, 2.6, 0.5, NORM_B5);
    pub const B7: Self = Self::b(2.0, 3.1, 0.5, NORM_B5);
    pub const V2_S: Self = Self::v2(V2_S, 0.2);
    pub const V2_M: Self = Self::v2(V2_M, 0.3);
    pub const V2_L: Self = Self::v2(V2_L, 0.4);

    fn channels(&self, channels: usize) -> usize {
        make_divisible(channels as f64 * self.width, 8)
    }

    fn blocks(&self, blocks: usize) -> usize {
        (blocks as f64 * self.depth).ceil() as usize
    }
}

/// torchvision's stochastic depth: 0.2 at the last block, rising linearly from 0 at the first.
const STOCHASTIC_DEPTH: f64 = 0.2;

#[derive(Module, Debug)]
pub struct EfficientNet {
    pub stem: ConvNormAct,
    pub stages: Vec<Vec<InvertedResidual>>,
    pub last: ConvNormAct,
    pub classifier: ClassifierHead,
}

impl EfficientNet {
    /// A freshly initialised network (uses the device's random state: seed it first).
    pub fn new(shape: EfficientNetShape, model: ModelShape, device: &Device) -> Self {
        let (norm, act) = (shape.norm, Activation::Silu);
        let first = shape.channels(shape.stages[0].channels[0]);
        let stem = ConvNormAct::new(
            ConvSpec::new([model.in_channels, first], 3, 2),
            norm,
            act,
            device,
        );
        let total: usize = shape.stages.iter().map(|s| shape.blocks(s.blocks)).sum();
        let mut index = 0;
        let mut stages = Vec::new();
        for stage in shape.stages {
            let [cin, cout] = stage.channels.map(|c| shape.channels(c));
            let blocks = (0..shape.blocks(stage.blocks))
                .map(|i| {
                    let (input, stride) = if i == 0 {
                        (cin, stage.stride)
                    } else {
                        (cout, 1)
                    };
                    let drop = STOCHASTIC_DEPTH * index as f64 / total as f64;
                    index += 1;
                    block(stage, input, cout, stride, drop, norm, device)
                })
                .collect();
            stages.push(blocks);
        }
        let last_in = shape.channels(shape.stages[shape.stages.len() - 1].channels[1]);
        let last_out = shape.last_channel.unwrap_or(4 * last_in);
        let init_range = 1.0 / (model.classes as f64).sqrt();
        Self {
            stem,
            stages,
            last: ConvNormAct::new(ConvSpec::new([last_in, last_out], 1, 1), norm, act, device),
            classifier: ClassifierHead {
                hidden: None,
                dropout: DropoutConfig::new(shape.dropout).init(),
                // torchvision: U(-1/sqrt(classes), 1/sqrt(classes)), zero bias.
                fc: LinearConfig::new(last_out, model.classes)
                    .with_initializer(Initializer::Uniform {
                        min: -init_range,
                        max: init_range,
                    })
                    .init(device),
            },
        }
    }
}

/// torchvision's `MBConv` or `FusedMBConv`.
fn block(
    stage: &Stage,
    input: usize,
    out: usize,
    stride: usize,
    drop: f64,
    norm: Norm,
    device: &Device,
) -> InvertedResidual {
    let act = Activation::Silu;
    let expanded = make_divisible((input * stage.expand) as f64, 8);
    let cna = |spec, act| ConvNormAct::new(spec, norm, act, device);
    let (expand, depthwise, se, project) = match (stage.fused, expanded != input) {
        (true, true) => (
            Some(cna(
                ConvSpec::new([input, expanded], stage.kernel, stride),
                act,
            )),
            None,
            None,
            cna(ConvSpec::new([expanded, out], 1, 1), Activation::None),
        ),
        (true, false) => (
            None,
            None,
            None,
            cna(ConvSpec::new([input, out], stage.kernel, stride), act),
        ),
        (false, _) => (
            (expanded != input).then(|| cna(ConvSpec::new([input, expanded], 1, 1), act)),
            Some(cna(
                ConvSpec::depthwise(expanded, stage.kernel, stride),
                act,
            )),
            Some(SqueezeExcite::new(
                expanded,
                (input / 4).max(1),
                Activation::Silu,
                Gate::Sigmoid,
                device,
            )),
            cna(ConvSpec::new([expanded, out], 1, 1), Activation::None),
        ),
    };
    InvertedResidual {
        expand,
        depthwise,
        se,
        project,
        drop_path: StochasticDepth::new(drop),
        residual: stride == 1 && input == out,
    }
}

impl Classifier for EfficientNet {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = self.stem.forward(images);
        for block in self.stages.iter().flatten() {
            x = block.forward(x);
        }
        self.classifier.forward_features(&self.last, x)
    }

    fn layout_name(&self, layout: Layout, path: &str) -> Option<String> {
        let name = torchvision_name(path);
        if layout == Layout::Timm {
            return self.timm_name(&name);
        }
        if let Some(edge) = stem_or_last_name(&name, self.stages.len() + 1) {
            return Some(edge);
        }
        if let Some(rest) = name.strip_prefix("stages.") {
            let (stage, within, block, part) = self.block_at(rest)?;
            let part = block.torchvision_part(part)?;
            return Some(format!("features.{}.{within}.block.{part}", stage + 1));
        }
        self.classifier.torchvision_name(&name)
    }
}

impl EfficientNet {
    /// The block a name under `stages.` (`rest` is `3.1.depthwise.conv.weight`) is in: its
    /// stage, its place in the stage, the block, and the rest of the name.
    fn block_at<'a>(&self, rest: &'a str) -> Option<(usize, usize, &InvertedResidual, &'a str)> {
        let mut parts = rest.splitn(3, '.');
        let stage: usize = parts.next()?.parse().ok()?;
        let within: usize = parts.next()?.parse().ok()?;
        let block = self.stages.get(stage)?.get(within)?;
        Some((stage, within, block, parts.next()?))
    }

    /// timm's names (`efficientnet_b0`): `conv_stem`/`bn1`, `blocks.S.B` with `conv_pw`,
    /// `conv_dw`, `se.conv_reduce`, `conv_pwl` (`conv_dw`, `conv_pw` in a block without
    /// expansion), `conv_head`/`bn2`, `classifier`.
    fn timm_name(&self, name: &str) -> Option<String> {
        let (first, rest) = name.split_once('.')?;
        let edge = |conv: &str, bn: &str| match rest.split_once('.')? {
            ("conv", tail) => Some(format!("{conv}.{tail}")),
            ("bn", tail) => Some(format!("{bn}.{tail}")),
            _ => None,
        };
        match first {
            "stem" => edge("conv_stem", "bn1"),
            "last" => edge("conv_head", "bn2"),
            "classifier" => Some(format!("classifier.{}", rest.strip_prefix("fc.")?)),
            "stages" => {
                let (stage, within, block, part) = self.block_at(rest)?;
                let (unit, tail) = part.split_once('.')?;
                let expanded = block.expand.is_some();
                let renamed = match (unit, tail.split_once('.')?, expanded) {
                    ("expand", ("conv", t), _) => format!("conv_pw.{t}"),
                    ("expand", ("bn", t), _) => format!("bn1.{t}"),
                    ("depthwise", ("conv", t), _) => format!("conv_dw.{t}"),
                    ("depthwise", ("bn", t), true) => format!("bn2.{t}"),
                    ("depthwise", ("bn", t), false) => format!("bn1.{t}"),
                    ("se", ("fc1", t), _) => format!("se.conv_reduce.{t}"),
                    ("se", ("fc2", t), _) => format!("se.conv_expand.{t}"),
                    ("project", ("conv", t), true) => format!("conv_pwl.{t}"),
                    ("project", ("bn", t), true) => format!("bn3.{t}"),
                    ("project", ("conv", t), false) => format!("conv_pw.{t}"),
                    ("project", ("bn", t), false) => format!("bn2.{t}"),
                    _ => return None,
                };
                Some(format!("blocks.{stage}.{within}.{renamed}"))
            }
            _ => None,
        }
    }
}
