//! Every model thaw knows, declared once: its name in session files, the family that builds it
//! and with what shape, its layer groups, its input convolution and the smallest image it
//! takes. A new variant of a family is one line of [`MODELS`]; a new family is its own file
//! (the module and its groups), a variant of [`Architecture`], its entry here and its arm in
//! [`super::with_model`].

use std::fmt;
use std::str::FromStr;

use super::mlp;
use super::resnet::{self, ResNetShape};

/// How a model is built: its family, with the variant's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    ResNet(ResNetShape),
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
    /// The smallest `image_size` the model can take.
    pub min_image_size: usize,
}

/// The models, in the order `unknown model` errors list them.
pub static MODELS: [ModelEntry; 4] = [
    resnet("resnet18", ResNetShape::RESNET18),
    resnet("resnet34", ResNetShape::RESNET34),
    resnet("resnet-mini", ResNetShape::MINI),
    ModelEntry {
        name: "mlp",
        architecture: Architecture::Mlp,
        groups: mlp::GROUPS,
        input_conv: None,
        min_image_size: 1,
    },
];

/// A ResNet built from BasicBlocks (torchvision's layout).
const fn resnet(name: &'static str, shape: ResNetShape) -> ModelEntry {
    ModelEntry {
        name,
        architecture: Architecture::ResNet(shape),
        groups: resnet::GROUPS,
        input_conv: Some("conv1.weight"),
        // Five halvings (stem, max pool, layer2..4) leave at least one pixel.
        min_image_size: 16,
    }
}

/// A model of the registry, by handle: what a session file's `model` names.
#[derive(Clone, Copy)]
pub struct ModelKind(&'static ModelEntry);

impl ModelKind {
    pub const RESNET18: Self = Self(&MODELS[0]);
    pub const RESNET34: Self = Self(&MODELS[1]);
    pub const RESNET_MINI: Self = Self(&MODELS[2]);
    pub const MLP: Self = Self(&MODELS[3]);

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

    /// The smallest `image_size` it takes.
    pub fn min_image_size(self) -> usize {
        self.0.min_image_size
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
        let error = "resnet50".parse::<ModelKind>().unwrap_err();
        assert!(
            error.contains("resnet18, resnet34, resnet-mini, mlp"),
            "{error}"
        );
        assert_eq!(ModelKind::MLP, ModelKind::named("mlp").unwrap());
        assert_ne!(ModelKind::MLP, ModelKind::RESNET18);
    }
}
