//! Every model thaw knows, declared once: its name in session files, the family that builds it
//! and with what shape, its layer groups, its input convolution and the smallest image it
//! takes. A new variant of a family is one line of [`MODELS`]; a new family is its own file
//! (the module and its groups), a variant of [`Architecture`], its entry here and its arm in
//! [`super::with_model`].

use std::fmt;
use std::str::FromStr;

use super::convnext::{self, ConvNextShape};
use super::efficientnet::{self, EfficientNetShape};
use super::mlp;
use super::mobilenet::{self, MobileNetShape};
use super::resnet::{self, ResNetShape};
use super::vgg::{self, VggShape};
use super::vit::{self, VitShape};

/// How a model is built: its family, with the variant's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    ResNet(ResNetShape),
    Vgg(VggShape),
    MobileNet(MobileNetShape),
    EfficientNet(EfficientNetShape),
    ConvNext(ConvNextShape),
    Vit(VitShape),
    Mlp,
}

/// One model of the registry.
#[derive(Debug, PartialEq, Eq)]
pub struct ModelEntry {
    /// Its name in session files and on the command line (`resnet18`).
    pub name: &'static str,
    pub architecture: Architecture,
    /// The ordered layer groups, each with the regex over parameter paths it covers.
    pub groups: &'static [(&'static str, &'static str)],
    /// The input convolution's weight, which a transfer adapts to other input channels.
    pub input_conv: Option<&'static str>,
    /// A ViT's position embeddings, which a transfer resamples to another image size.
    pub position_embedding: Option<&'static str>,
    /// The smallest `image_size` the model can take.
    pub min_image_size: usize,
    /// What `image_size` must be a multiple of (a ViT's patch size; 1 for most).
    pub image_multiple: usize,
}

/// The models, in the order `unknown model` errors list them.
pub static MODELS: [ModelEntry; 42] = [
    resnet("resnet18", ResNetShape::RESNET18),
    resnet("resnet34", ResNetShape::RESNET34),
    resnet("resnet50", ResNetShape::RESNET50),
    resnet("resnet101", ResNetShape::RESNET101),
    resnet("resnet152", ResNetShape::RESNET152),
    resnet("resnext50_32x4d", ResNetShape::RESNEXT50_32X4D),
    resnet("resnext101_32x8d", ResNetShape::RESNEXT101_32X8D),
    resnet("wide_resnet50_2", ResNetShape::WIDE_RESNET50_2),
    vgg("vgg11", VggShape::VGG11),
    vgg("vgg11_bn", VggShape::VGG11.bn()),
    vgg("vgg13", VggShape::VGG13),
    vgg("vgg13_bn", VggShape::VGG13.bn()),
    vgg("vgg16", VggShape::VGG16),
    vgg("vgg16_bn", VggShape::VGG16.bn()),
    vgg("vgg19", VggShape::VGG19),
    vgg("vgg19_bn", VggShape::VGG19.bn()),
    mobilenet("mobilenet_v2", MobileNetShape::V2, mobilenet::GROUPS_5),
    mobilenet(
        "mobilenet_v3_small",
        MobileNetShape::V3Small,
        mobilenet::GROUPS_4,
    ),
    mobilenet(
        "mobilenet_v3_large",
        MobileNetShape::V3Large,
        mobilenet::GROUPS_5,
    ),
    efficientnet("efficientnet_b0", EfficientNetShape::B0),
    efficientnet("efficientnet_b1", EfficientNetShape::B1),
    efficientnet("efficientnet_b2", EfficientNetShape::B2),
    efficientnet("efficientnet_b3", EfficientNetShape::B3),
    efficientnet("efficientnet_b4", EfficientNetShape::B4),
    efficientnet("efficientnet_b5", EfficientNetShape::B5),
    efficientnet("efficientnet_b6", EfficientNetShape::B6),
    efficientnet("efficientnet_b7", EfficientNetShape::B7),
    efficientnet("efficientnet_v2_s", EfficientNetShape::V2_S),
    efficientnet("efficientnet_v2_m", EfficientNetShape::V2_M),
    efficientnet("efficientnet_v2_l", EfficientNetShape::V2_L),
    convnext("convnext_tiny", ConvNextShape::TINY),
    convnext("convnext_small", ConvNextShape::SMALL),
    convnext("convnext_base", ConvNextShape::BASE),
    convnext("convnext_large", ConvNextShape::LARGE),
    vit("vit_b_16", VitShape::B_16),
    vit("vit_b_32", VitShape::B_32),
    vit("vit_l_16", VitShape::L_16),
    vit("vit_tiny_patch16_224", VitShape::TINY_16),
    vit("vit_small_patch16_224", VitShape::SMALL_16),
    vit("vit_base_patch16_224", VitShape::B_16),
    resnet("resnet-mini", ResNetShape::MINI),
    ModelEntry {
        name: "mlp",
        architecture: Architecture::Mlp,
        groups: mlp::GROUPS,
        input_conv: None,
        position_embedding: None,
        min_image_size: 1,
        image_multiple: 1,
    },
];

/// A ResNet, ResNeXt or Wide ResNet (torchvision's layout).
const fn resnet(name: &'static str, shape: ResNetShape) -> ModelEntry {
    ModelEntry {
        name,
        architecture: Architecture::ResNet(shape),
        groups: resnet::GROUPS,
        input_conv: Some("conv1.weight"),
        position_embedding: None,
        // Five halvings (stem, max pool, layer2..4) leave at least one pixel.
        min_image_size: 16,
        image_multiple: 1,
    }
}

/// A VGG (torchvision's layout).
const fn vgg(name: &'static str, shape: VggShape) -> ModelEntry {
    ModelEntry {
        name,
        architecture: Architecture::Vgg(shape),
        groups: vgg::GROUPS,
        input_conv: Some("block1.0.conv.weight"),
        position_embedding: None,
        // Five halvings by max pooling leave at least one pixel.
        min_image_size: 32,
        image_multiple: 1,
    }
}

/// A MobileNet (torchvision's layout).
const fn mobilenet(
    name: &'static str,
    shape: MobileNetShape,
    groups: &'static [(&'static str, &'static str)],
) -> ModelEntry {
    ModelEntry {
        name,
        architecture: Architecture::MobileNet(shape),
        groups,
        input_conv: Some("stem.conv.weight"),
        position_embedding: None,
        // Five halvings leave at least one pixel.
        min_image_size: 32,
        image_multiple: 1,
    }
}

/// An EfficientNet (torchvision's layout).
const fn efficientnet(name: &'static str, shape: EfficientNetShape) -> ModelEntry {
    ModelEntry {
        name,
        architecture: Architecture::EfficientNet(shape),
        groups: match shape.stages.len() {
            6 => efficientnet::GROUPS_6,
            _ => efficientnet::GROUPS_7,
        },
        input_conv: Some("stem.conv.weight"),
        position_embedding: None,
        // Five halvings leave at least one pixel.
        min_image_size: 32,
        image_multiple: 1,
    }
}

/// A ConvNeXt (torchvision's layout and timm's names).
const fn convnext(name: &'static str, shape: ConvNextShape) -> ModelEntry {
    ModelEntry {
        name,
        architecture: Architecture::ConvNext(shape),
        groups: convnext::GROUPS,
        input_conv: Some("stem.conv.weight"),
        position_embedding: None,
        // The stem's 4x4 patches and three halvings leave at least one pixel.
        min_image_size: 32,
        image_multiple: 1,
    }
}

/// A Vision Transformer (torchvision's layout and timm's names).
const fn vit(name: &'static str, shape: VitShape) -> ModelEntry {
    ModelEntry {
        name,
        architecture: Architecture::Vit(shape),
        groups: match shape.layers {
            24 => vit::GROUPS_24,
            _ => vit::GROUPS_12,
        },
        input_conv: Some("conv_proj.weight"),
        position_embedding: Some("encoder.pos_embedding"),
        // Whole patches: at least one, and no pixels left over.
        min_image_size: shape.patch,
        image_multiple: shape.patch,
    }
}

/// A model of the registry, by handle: what a session file's `model` names.
#[derive(Clone, Copy)]
pub struct ModelKind(&'static ModelEntry);

impl ModelKind {
    pub const RESNET18: Self = Self(&MODELS[0]);
    pub const RESNET34: Self = Self(&MODELS[1]);
    pub const RESNET_MINI: Self = Self(&MODELS[MODELS.len() - 2]);
    pub const MLP: Self = Self(&MODELS[MODELS.len() - 1]);

    /// The model of that name, if the registry has one.
    pub fn named(name: &str) -> Option<Self> {
        MODELS.iter().find(|m| m.name == name).map(Self)
    }

    /// Every model's name.
    pub fn names() -> Vec<&'static str> {
        MODELS.iter().map(|m| m.name).collect()
    }

    /// Its entry in the registry.
    pub fn entry(self) -> &'static ModelEntry {
        self.0
    }

    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// Its family, with the variant's shape.
    pub fn architecture(self) -> Architecture {
        self.0.architecture
    }

    /// The ordered group names and the parameter paths each covers.
    pub fn group_patterns(self) -> &'static [(&'static str, &'static str)] {
        self.0.groups
    }

    /// The ordered group names.
    pub fn group_names(self) -> Vec<&'static str> {
        self.0.groups.iter().map(|(name, _)| *name).collect()
    }

    /// The model's input convolution, which a weights transfer adapts to other input channels.
    pub fn input_conv(self) -> Option<&'static str> {
        self.0.input_conv
    }

    /// The model's position embeddings, which a weights transfer resamples to its image size.
    pub fn position_embedding(self) -> Option<&'static str> {
        self.0.position_embedding
    }

    /// The smallest `image_size` it takes.
    pub fn min_image_size(self) -> usize {
        self.0.min_image_size
    }

    /// Whether the model takes images of `size` pixels square; if not, what it takes.
    pub fn check_image_size(self, size: usize) -> Result<(), String> {
        let (smallest, multiple) = (self.0.min_image_size, self.0.image_multiple);
        if size < smallest {
            return Err(format!(
                "{size} is too small for {}: use {smallest} or more",
                self.0.name
            ));
        }
        if !size.is_multiple_of(multiple) {
            let below = size / multiple * multiple;
            return Err(format!(
                "{size} is not a multiple of {}'s patch size {multiple}: use {below} or {}",
                self.0.name,
                below + multiple
            ));
        }
        Ok(())
    }
}

impl PartialEq for ModelKind {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for ModelKind {}

impl fmt::Debug for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModelKind({})", self.0.name)
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

impl FromStr for ModelKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::named(s).ok_or_else(|| {
            format!(
                "unknown model {s:?}: expected one of {}",
                Self::names().join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_is_found_by_its_name_and_names_are_unique() {
        for entry in &MODELS {
            let kind: ModelKind = entry.name.parse().unwrap();
            assert_eq!(kind.entry(), entry);
            assert_eq!(kind.to_string(), entry.name);
            assert!(!entry.groups.is_empty(), "{}", entry.name);
            for (_, pattern) in entry.groups {
                regex::Regex::new(pattern).unwrap();
            }
        }
        let mut names = ModelKind::names();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), MODELS.len());
        let error = "resnet5".parse::<ModelKind>().unwrap_err();
        assert!(
            error.contains("resnet18, resnet34, resnet50,") && error.ends_with("resnet-mini, mlp"),
            "{error}"
        );
        assert_eq!(ModelKind::MLP, ModelKind::named("mlp").unwrap());
        assert_ne!(ModelKind::MLP, ModelKind::RESNET18);
    }

    #[test]
    fn image_sizes_are_checked_against_the_smallest_and_the_patch() {
        let vit = ModelKind::named("vit_b_16").unwrap();
        assert_eq!(vit.check_image_size(224), Ok(()));
        assert_eq!(
            vit.check_image_size(100).unwrap_err(),
            "100 is not a multiple of vit_b_16's patch size 16: use 96 or 112"
        );
        assert_eq!(
            vit.check_image_size(8).unwrap_err(),
            "8 is too small for vit_b_16: use 16 or more"
        );
        let vgg = ModelKind::named("vgg11").unwrap();
        assert!(vgg.check_image_size(31).is_err());
        assert_eq!(vgg.check_image_size(33), Ok(()));
    }
}
