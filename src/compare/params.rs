//! Parameter counts of a run's model, trainable at the start and in total.

use std::path::Path;

use burn::tensor::Device;

use crate::engine::model::{LayerGroup, Mlp, ModelShape, ResNet, layer_groups};
use crate::session::RunSpec;

/// Parameters of a run's model (BatchNorm running statistics not counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamCounts {
    /// In the groups not frozen when the run starts.
    pub trainable: usize,
    pub total: usize,
}

/// Counts the parameters of the model `spec` describes, with as many classes as the run's
/// `classes.json` names; `None` when that file is missing or is not a JSON array of names.
pub fn count(spec: &RunSpec, classes_json: &Path) -> Option<ParamCounts> {
    let text = std::fs::read(classes_json).ok()?;
    let classes: Vec<String> = serde_json::from_slice(&text).ok()?;
    if classes.is_empty() {
        return None;
    }
    let shape = ModelShape {
        classes: classes.len(),
        in_channels: spec.in_channels,
        image_size: spec.image_size,
    };
    let groups = groups(spec, shape);
    let frozen = spec.initially_frozen();
    Some(ParamCounts {
        trainable: groups
            .iter()
            .filter(|g| !frozen.contains(&g.name))
            .map(|g| g.params)
            .sum(),
        total: groups.iter().map(|g| g.params).sum(),
    })
}

fn groups(spec: &RunSpec, shape: ModelShape) -> Vec<LayerGroup> {
    // Parameters are initialised lazily: building the model only to count them allocates
    // no weights.
    let device = Device::flex();
    match spec.model.resnet_shape() {
        Some(resnet) => layer_groups(spec.model, &ResNet::new(resnet, shape, &device)),
        None => layer_groups(spec.model, &Mlp::new(shape, &device)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::ModelKind;

    #[test]
    fn frozen_groups_count_only_in_the_total() {
        let dir = tempfile::tempdir().expect("temp dir");
        let classes = dir.path().join("classes.json");
        std::fs::write(&classes, r#"["a", "b", "c", "d", "e"]"#).expect("write");
        let spec = RunSpec {
            model: ModelKind::Mlp,
            freeze: vec!["stem".into()],
            ..RunSpec::default()
        };
        // 3*32*32 inputs -> 64 -> 64 -> 5.
        let (stem, hidden, head) = (3072 * 64 + 64, 64 * 64 + 64, 64 * 5 + 5);
        assert_eq!(
            count(&spec, &classes),
            Some(ParamCounts {
                trainable: hidden + head,
                total: stem + hidden + head,
            })
        );
    }

    #[test]
    fn without_classes_there_is_no_count() {
        let dir = tempfile::tempdir().expect("temp dir");
        let spec = RunSpec::default();
        assert_eq!(count(&spec, &dir.path().join("classes.json")), None);
        std::fs::write(dir.path().join("bad.json"), "{").expect("write");
        assert_eq!(count(&spec, &dir.path().join("bad.json")), None);
    }
}
