//! What every model of the zoo is to the rest of thaw: a module from images to class logits,
//! what it is built for, and its tensors' names in torchvision's and timm's state dicts.

use burn::module::Module;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::tensors::torchvision_name;

/// A model that maps a batch of images `[N, C, H, W]` to class logits `[N, classes]`.
pub trait Classifier: Module + Sized + 'static {
    /// Class logits for a batch of images.
    fn forward(&self, images: Tensor<4>) -> Tensor<2>;

    /// The name `layout`'s state dicts give the tensor at `path` (a field path such as
    /// `layer1.0.bn1.gamma`), or `None` where that layout has no such tensor or no such
    /// model.
    fn layout_name(&self, layout: Layout, path: &str) -> Option<String> {
        match layout {
            Layout::Torchvision => Some(torchvision_name(path)),
            Layout::Timm => None,
        }
    }

    /// The shape `layout`'s state dicts give the tensor at `path`, whose shape here is
    /// `shape` (the same values in the same order: timm's layer scale `[C]` for `[C, 1, 1]`).
    fn layout_shape(&self, _layout: Layout, _path: &str, shape: Vec<usize>) -> Vec<usize> {
        shape
    }
}

/// Whose parameter names and layouts a state dict follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `torchvision.models`' state dicts (and PyTorch's own layouts).
    Torchvision,
    /// timm's (`timm.create_model`).
    Timm,
}

impl Layout {
    /// Every layout, in the order a tie between them is decided.
    pub const ALL: [Self; 2] = [Self::Torchvision, Self::Timm];

    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Torchvision => "torchvision",
            Self::Timm => "timm",
        }
    }
}

impl std::str::FromStr for Layout {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| format!("unknown names {s:?}: expected torchvision or timm"))
    }
}

/// What a model is built for: its input and its classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelShape {
    pub classes: usize,
    pub in_channels: usize,
    pub image_size: usize,
}
