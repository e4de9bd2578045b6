//! Parameter counts of a run's model, trainable at the start and in total.

use crate::engine::model::{ModelShape, groups_of};
use crate::session::RunSpec;

/// Parameters of a run's model (BatchNorm running statistics not counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamCounts {
    /// In the groups not frozen when the run starts.
    pub trainable: usize,
    pub total: usize,
}

/// Counts the parameters of the model `spec` describes, with `classes` outputs (as many as
/// the run's `classes.json` names); `None` for none.
pub fn count(spec: &RunSpec, classes: usize) -> Option<ParamCounts> {
    if classes == 0 {
        return None;
    }
    let shape = ModelShape {
        classes,
        in_channels: spec.in_channels,
        image_size: spec.image_size,
    };
    let groups = groups_of(spec.model, shape);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::ModelKind;

    #[test]
    fn frozen_groups_count_only_in_the_total() {
        let spec = RunSpec {
            model: ModelKind::MLP,
            freeze: vec!["stem".into()],
            ..RunSpec::default()
        };
        // 3*32*32 inputs -> 64 -> 64 -> 5.
        let (stem, hidden, head) = (3072 * 64 + 64, 64 * 64 + 64, 64 * 5 + 5);
        assert_eq!(
            count(&spec, 5),
            Some(ParamCounts {
                trainable: hidden + head,
                total: stem + hidden + head,
            })
        );
    }

    #[test]
    fn without_classes_there_is_no_count() {
        assert_eq!(count(&RunSpec::default(), 0), None);
    }
}
