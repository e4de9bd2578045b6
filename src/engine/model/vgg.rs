//! VGG-11/13/16/19, with and without BatchNorm, as torchvision builds them. Fields are grouped
//! by block (`block3.1.conv.weight`); [`Vgg::layout_name`] gives torchvision's flat
//! `features.N` and `classifier.N` names.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, Dropout, DropoutConfig, Linear, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::classifier::{Classifier, Layout, ModelShape};
use super::layers::{batch_norm, kaiming_conv, normal_linear};
use super::tensors::torchvision_name;

/// Layer groups of the VGG family, in order from input to output.
pub(super) const GROUPS: &[(&str, &str)] = &[
    ("block1", r"^block1\."),
    ("block2", r"^block2\."),
    ("block3", r"^block3\."),
    ("block4", r"^block4\."),
    ("block5", r"^block5\."),
    ("head", r"^classifier\."),
];

/// The width of each block's convolutions.
const WIDTHS: [usize; 5] = [64, 128, 256, 512, 512];

/// Convolutions per block (torchvision's configurations A, B, D and E) and whether each is
/// followed by BatchNorm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VggShape {
    pub convs: [usize; 5],
    pub batch_norm: bool,
}

impl VggShape {
    pub const VGG11: Self = Self::new([1, 1, 2, 2, 2]);
    pub const VGG13: Self = Self::new([2, 2, 2, 2, 2]);
    pub const VGG16: Self = Self::new([2, 2, 3, 3, 3]);
    pub const VGG19: Self = Self::new([2, 2, 4, 4, 4]);

    const fn new(convs: [usize; 5]) -> Self {
        Self {
            convs,
            batch_norm: false,
        }
    }

    /// The same configuration with BatchNorm after every convolution (`vgg16_bn`).
    pub const fn bn(self) -> Self {
        Self {
            batch_norm: true,
            ..self
        }
    }
}

/// A 3x3 convolution, its BatchNorm in the `_bn` variants, then ReLU.
#[derive(Module, Debug)]
pub struct VggConv {
    pub conv: Conv2d,
    pub bn: Option<BatchNorm>,
}

/// torchvision's classifier: Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear.
#[derive(Module, Debug)]
pub struct VggHead {
    pub fc1: Linear,
    pub dropout1: Dropout,
    pub fc2: Linear,
    pub dropout2: Dropout,
    pub fc3: Linear,
}

#[derive(Module, Debug)]
pub struct Vgg {
    pub block1: Vec<VggConv>,
    pub block2: Vec<VggConv>,
    pub block3: Vec<VggConv>,
    pub block4: Vec<VggConv>,
    pub block5: Vec<VggConv>,
    pub pool: MaxPool2d,
    pub avgpool: AdaptiveAvgPool2d,
    pub classifier: VggHead,
    /// Convolutions per block, for torchvision's names.
    pub convs: [usize; 5],
}

impl Vgg {
    /// A freshly initialised VGG (uses the device's random state: seed it first).
    pub fn new(shape: VggShape, model: ModelShape, device: &Device) -> Self {
        let mut in_ch = model.in_channels;
        let mut blocks = WIDTHS.iter().zip(shape.convs).map(|(&width, convs)| {
            let block: Vec<VggConv> = (0..convs)
                .map(|_| {
                    let conv = kaiming_conv(
                        Conv2dConfig::new([in_ch, width], [3, 3])
                            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)),
                        device,
                    );
                    in_ch = width;
                    VggConv {
                        conv,
                        bn: shape
                            .batch_norm
                            .then(|| batch_norm(width, 1e-5, 0.1, device)),
                    }
                })
                .collect();
            block
        });
        let mut next = || blocks.next().unwrap_or_default();
        let (block1, block2, block3, block4, block5) = (next(), next(), next(), next(), next());
        let dropout = || DropoutConfig::new(0.5).init();
        // torchvision initialises VGG's Linear layers from N(0, 0.01).
        let linear = |i, o| normal_linear(i, o, 0.01, device);
        Self {
            block1,
            block2,
            block3,
            block4,
            block5,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            avgpool: AdaptiveAvgPool2dConfig::new([7, 7]).init(),
            classifier: VggHead {
                fc1: linear(512 * 7 * 7, 4096),
                dropout1: dropout(),
                fc2: linear(4096, 4096),
                dropout2: dropout(),
                fc3: linear(4096, model.classes),
            },
            convs: shape.convs,
        }
    }

    /// torchvision's index in `features` of convolution `conv` (from 0) of block `block`
    /// (from 1): each convolution takes two places (three with BatchNorm), each block's
    /// pooling one.
    fn feature_index(&self, block: usize, conv: usize) -> usize {
        let per_conv = if self.block1.first().is_some_and(|c| c.bn.is_some()) {
            3
        } else {
            2
        };
        let before: usize = self.convs[..block - 1]
            .iter()
            .map(|c| c * per_conv + 1)
            .sum();
        before + conv * per_conv
    }
}

impl Classifier for Vgg {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = images;
        for block in [
            &self.block1,
            &self.block2,
            &self.block3,
            &self.block4,
            &self.block5,
        ] {
            for layer in block {
                x = layer.conv.forward(x);
                if let Some(bn) = &layer.bn {
                    x = bn.forward(x);
                }
                x = relu(x);
            }
            x = self.pool.forward(x);
        }
        let x = self.avgpool.forward(x).flatten::<2>(1, 3);
        let head = &self.classifier;
        let x = head.dropout1.forward(relu(head.fc1.forward(x)));
        let x = head.dropout2.forward(relu(head.fc2.forward(x)));
        head.fc3.forward(x)
    }

    fn layout_name(&self, layout: Layout, path: &str) -> Option<String> {
        if layout != Layout::Torchvision {
            return None;
        }
        let name = torchvision_name(path);
        let mut parts = name.splitn(4, '.');
        let (first, second, third, rest) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next());
        if let Some(block) = first.strip_prefix("block") {
            let (block, conv): (usize, usize) = (block.parse().ok()?, second.parse().ok()?);
            let index = self.feature_index(block, conv) + usize::from(third == "bn");
            return Some(format!("features.{index}.{}", rest?));
        }
        let index = match (first, second) {
            ("classifier", "fc1") => 0,
            ("classifier", "fc2") => 3,
            ("classifier", "fc3") => 6,
            _ => return Some(name),
        };
        Some(format!("classifier.{index}.{third}"))
    }
}
