//! MobileNetV2 and MobileNetV3 (Small, Large) as torchvision builds them. Blocks are held by
//! resolution stage (`stages.2.0.depthwise.conv.weight`); [`MobileNet::layout_name`] gives
//! torchvision's flat `features.N` names.

use burn::nn::{DropoutConfig, Linear};
use burn::prelude::*;

use super::classifier::{Classifier, Layout, ModelShape};
use super::layers::normal_linear;
use super::mbconv::{
    Activation, ClassifierHead, ConvNormAct, ConvSpec, Gate, InvertedResidual, Norm, SqueezeExcite,
    StochasticDepth, make_divisible, stem_or_last_name,
};
use super::tensors::torchvision_name;

/// Groups of a network with five resolution stages after its stem (1/2 to 1/32 of the input).
pub(super) const GROUPS_5: &[(&str, &str)] = &[
    ("stem", r"^stem\."),
    ("stage1", r"^stages\.0\."),
    ("stage2", r"^stages\.1\."),
    ("stage3", r"^stages\.2\."),
    ("stage4", r"^stages\.3\."),
    ("stage5", r"^stages\.4\."),
    ("head", r"^(last|classifier)\."),
];

/// Groups of MobileNetV3-Small, whose first block already halves (1/4 to 1/32).
pub(super) const GROUPS_4: &[(&str, &str)] = &[
    ("stem", r"^stem\."),
    ("stage1", r"^stages\.0\."),
    ("stage2", r"^stages\.1\."),
    ("stage3", r"^stages\.2\."),
    ("stage4", r"^stages\.3\."),
    ("head", r"^(last|classifier)\."),
];

/// The three networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MobileNetShape {
    V2,
    V3Large,
    V3Small,
}

/// torchvision's `bneck_conf`: kernel, expanded and output channels, squeeze-excitation,
/// hard swish (else ReLU), stride.
struct V3Block(usize, usize, usize, bool, bool, usize);

const V3_LARGE: &[V3Block] = &[
    V3Block(3, 16, 16, false, false, 1),
    V3Block(3, 64, 24, false, false, 2),
    V3Block(3, 72, 24, false, false, 1),
    V3Block(5, 72, 40, true, false, 2),
    V3Block(5, 120, 40, true, false, 1),
    V3Block(5, 120, 40, true, false, 1),
    V3Block(3, 240, 80, false, true, 2),
    V3Block(3, 200, 80, false, true, 1),
    V3Block(3, 184, 80, false, true, 1),
    V3Block(3, 184, 80, false, true, 1),
    V3Block(3, 480, 112, true, true, 1),
    V3Block(3, 672, 112, true, true, 1),
    V3Block(5, 672, 160, true, true, 2),
    V3Block(5, 960, 160, true, true, 1),
    V3Block(5, 960, 160, true, true, 1),
];

const V3_SMALL: &[V3Block] = &[
    V3Block(3, 16, 16, true, false, 2),
    V3Block(3, 72, 24, false, false, 2),
    V3Block(3, 88, 24, false, false, 1),
    V3Block(5, 96, 40, true, true, 2),
    V3Block(5, 240, 40, true, true, 1),
    V3Block(5, 240, 40, true, true, 1),
    V3Block(5, 120, 48, true, true, 1),
    V3Block(5, 144, 48, true, true, 1),
    V3Block(5, 288, 96, true, true, 2),
    V3Block(5, 576, 96, true, true, 1),
    V3Block(5, 576, 96, true, true, 1),
];

/// MobileNetV2's inverted residual settings: expansion, channels, repeats, first stride.
const V2_SETTINGS: [[usize; 4]; 7] = [
    [1, 16, 1, 1],
    [6, 24, 2, 2],
    [6, 32, 3, 2],
    [6, 64, 4, 2],
    [6, 96, 3, 1],
    [6, 160, 3, 2],
    [6, 320, 1, 1],
];

#[derive(Module, Debug)]
pub struct MobileNet {
    pub stem: ConvNormAct,
    pub stages: Vec<Vec<InvertedResidual>>,
    pub last: ConvNormAct,
    pub classifier: ClassifierHead,
}

/// torchvision initialises MobileNet's Linear layers from N(0, 0.01).
fn linear(inputs: usize, outputs: usize, device: &Device) -> Linear {
    normal_linear(inputs, outputs, 0.01, device)
}

/// Splits blocks into resolution stages: a stage starts with the first block and with every
/// block that halves.
fn by_stage(blocks: Vec<(usize, InvertedResidual)>) -> Vec<Vec<InvertedResidual>> {
    let mut stages: Vec<Vec<InvertedResidual>> = Vec::new();
    for (stride, block) in blocks {
        match stages.last_mut() {
            Some(stage) if stride == 1 => stage.push(block),
            _ => stages.push(vec![block]),
        }
    }
    stages
}

impl MobileNet {
    /// A freshly initialised network (uses the device's random state: seed it first).
    pub fn new(shape: MobileNetShape, model: ModelShape, device: &Device) -> Self {
        match shape {
            MobileNetShape::V2 => Self::v2(model, device),
            MobileNetShape::V3Large => Self::v3(V3_LARGE, 1280, model, device),
            MobileNetShape::V3Small => Self::v3(V3_SMALL, 1024, model, device),
        }
    }

    fn v2(model: ModelShape, device: &Device) -> Self {
        let (norm, act) = (Norm::TORCH, Activation::Relu6);
        let stem = ConvNormAct::new(
            ConvSpec::new([model.in_channels, 32], 3, 2),
            norm,
            act,
            device,
        );
        let mut blocks = Vec::new();
        let mut input = 32;
        for [t, c, n, s] in V2_SETTINGS {
            for i in 0..n {
                let stride = if i == 0 { s } else { 1 };
                let hidden = input * t;
                let block = InvertedResidual {
                    expand: (t != 1).then(|| {
                        ConvNormAct::new(ConvSpec::new([input, hidden], 1, 1), norm, act, device)
                    }),
                    depthwise: Some(ConvNormAct::new(
                        ConvSpec::depthwise(hidden, 3, stride),
                        norm,
                        act,
                        device,
                    )),
                    se: None,
                    project: ConvNormAct::new(
                        ConvSpec::new([hidden, c], 1, 1),
                        norm,
                        Activation::None,
                        device,
                    ),
                    drop_path: StochasticDepth::new(0.0),
                    residual: stride == 1 && input == c,
                };
                blocks.push((stride, block));
                input = c;
            }
        }
        Self {
            stem,
            stages: by_stage(blocks),
            last: ConvNormAct::new(ConvSpec::new([input, 1280], 1, 1), norm, act, device),
            classifier: ClassifierHead {
                hidden: None,
                dropout: DropoutConfig::new(0.2).init(),
                fc: linear(1280, model.classes, device),
            },
        }
    }

    fn v3(config: &[V3Block], last_channel: usize, model: ModelShape, device: &Device) -> Self {
        let norm = Norm {
            epsilon: 1e-3,
            momentum: 0.01,
        };
        let stem = ConvNormAct::new(
            ConvSpec::new([model.in_channels, 16], 3, 2),
            norm,
            Activation::HardSwish,
            device,
        );
        let mut blocks = Vec::new();
        let mut input = 16;
        for &V3Block(kernel, expanded, out, use_se, hs, stride) in config {
            let act = if hs {
                Activation::HardSwish
            } else {
                Activation::Relu
            };
            let block = InvertedResidual {
                expand: (expanded != input).then(|| {
                    ConvNormAct::new(ConvSpec::new([input, expanded], 1, 1), norm, act, device)
                }),
                depthwise: Some(ConvNormAct::new(
                    ConvSpec::depthwise(expanded, kernel, stride),
                    norm,
                    act,
                    device,
                )),
                se: use_se.then(|| {
                    let squeeze = make_divisible((expanded / 4) as f64, 8);
                    SqueezeExcite::new(
                        expanded,
                        squeeze,
                        Activation::Relu,
                        Gate::HardSigmoid,
                        device,
                    )
                }),
                project: ConvNormAct::new(
                    ConvSpec::new([expanded, out], 1, 1),
                    norm,
                    Activation::None,
                    device,
                ),
                drop_path: StochasticDepth::new(0.0),
                residual: stride == 1 && input == out,
            };
            blocks.push((stride, block));
            input = out;
        }
        let last_conv = 6 * input;
        Self {
            stem,
            stages: by_stage(blocks),
            last: ConvNormAct::new(
                ConvSpec::new([input, last_conv], 1, 1),
                norm,
                Activation::HardSwish,
                device,
            ),
            classifier: ClassifierHead {
                hidden: Some(linear(last_conv, last_channel, device)),
                dropout: DropoutConfig::new(0.2).init(),
                fc: linear(last_channel, model.classes, device),
            },
        }
    }

    fn blocks(&self) -> impl Iterator<Item = &InvertedResidual> {
        self.stages.iter().flatten()
    }

    /// torchvision's name within block `block` of `part` (`expand.conv.weight`): V3 numbers
    /// the parts of its `block` as EfficientNet does; V2 those of its `conv`, with the
    /// projection's convolution and BatchNorm as two.
    fn block_name(&self, block: &InvertedResidual, part: &str) -> Option<String> {
        if self.classifier.hidden.is_some() {
            return Some(format!("block.{}", block.torchvision_part(part)?));
        }
        let (unit, rest) = part.split_once('.')?;
        let index = block.part_index(unit)?;
        match (unit, rest.split_once('.')?) {
            ("project", ("conv", tail)) => Some(format!("conv.{index}.{tail}")),
            ("project", ("bn", tail)) => Some(format!("conv.{}.{tail}", index + 1)),
            _ => Some(format!("conv.{index}.{}", ConvNormAct::unit_name(rest)?)),
        }
    }
}

impl Classifier for MobileNet {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = self.stem.forward(images);
        for block in self.blocks() {
            x = block.forward(x);
        }
        self.classifier.forward_features(&self.last, x)
    }

    fn layout_name(&self, layout: Layout, path: &str) -> Option<String> {
        if layout != Layout::Torchvision {
            return None;
        }
        let name = torchvision_name(path);
        if let Some(edge) = stem_or_last_name(&name, self.blocks().count() + 1) {
            return Some(edge);
        }
        if let Some(rest) = name.strip_prefix("stages.") {
            let mut parts = rest.splitn(3, '.');
            let stage: usize = parts.next()?.parse().ok()?;
            let within: usize = parts.next()?.parse().ok()?;
            let part = parts.next()?;
            let before: usize = self.stages.get(..stage)?.iter().map(Vec::len).sum();
            let block = self.stages.get(stage)?.get(within)?;
            let index = 1 + before + within;
            return Some(format!(
                "features.{index}.{}",
                self.block_name(block, part)?
            ));
        }
        self.classifier.torchvision_name(&name)
    }
}
