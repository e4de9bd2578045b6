//! A small multi-layer perceptron over flattened images, for tiny tests.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::classifier::{Classifier, ModelShape};

/// Layer groups of the MLP, in order from input to output.
pub(super) const GROUPS: &[(&str, &str)] = &[
    ("stem", r"^fc1\."),
    ("hidden", r"^fc2\."),
    ("head", r"^head\."),
];

const HIDDEN: usize = 64;

/// Two hidden layers and a classification head.
#[derive(Module, Debug)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
    pub head: Linear,
}

impl Mlp {
    /// A freshly initialised MLP (uses the device's random state: seed it first).
    pub fn new(model: ModelShape, device: &Device) -> Self {
        let inputs = model.in_channels * model.image_size * model.image_size;
        Self {
            fc1: LinearConfig::new(inputs, HIDDEN).init(device),
            fc2: LinearConfig::new(HIDDEN, HIDDEN).init(device),
            head: LinearConfig::new(HIDDEN, model.classes).init(device),
        }
    }
}

impl Classifier for Mlp {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let x = images.flatten::<2>(1, 3);
        let x = relu(self.fc1.forward(x));
        let x = relu(self.fc2.forward(x));
        self.head.forward(x)
    }
}
