//! Command-line verbs: the dashboard's (attach, demo, bare `thaw`), the daemon's, and those that
//! work on weights files (inspect, dry-run transfer, predict, export).

pub mod daemon;
pub mod dashboard;
pub mod export;
pub mod offline;
pub mod predict;
pub mod render;
pub mod weights;

use crate::engine::model::{
    Classifier, Layout, ModelKind, ModelShape, ModelTask, for_each_tensor, with_model,
};
use crate::engine::weights::WeightsFile;

/// The class count of a file's classification head for a model of `kind`: the length of the
/// head's bias under any name the file may give it (thaw's, torchvision's, timm's).
pub fn head_classes(file: &WeightsFile, kind: ModelKind) -> Option<usize> {
    // A class count no layer of the zoo has otherwise tells the head's bias apart.
    const PROBE: usize = 7919;
    struct HeadBias;
    impl ModelTask for HeadBias {
        type Output = Vec<String>;
        fn run<M: Classifier>(self, model: M) -> Vec<String> {
            let mut names = Vec::new();
            for_each_tensor(&model, |t| {
                if t.shape == [PROBE] {
                    names.push(t.path.to_string());
                    names.extend(
                        Layout::ALL
                            .iter()
                            .filter_map(|l| model.layout_name(*l, t.path)),
                    );
                }
            });
            names
        }
    }
    let shape = ModelShape {
        classes: PROBE,
        in_channels: 3,
        image_size: kind.min_image_size(),
    };
    // Built only to be named: parameters are initialised lazily, nothing is allocated.
    with_model(kind, shape, &burn::prelude::Device::flex(), HeadBias)
        .iter()
        .find_map(|name| file.tensors.get(name))
        .and_then(|t| (t.shape.len() == 1).then_some(t.shape[0]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::weights::{FileTensor, Format};

    fn file_with(name: &str) -> WeightsFile {
        let bias = FileTensor {
            dtype: "f32".into(),
            shape: vec![7],
            values: Some(vec![0.0; 7]),
        };
        WeightsFile {
            path: "w.safetensors".into(),
            format: Format::Safetensors,
            wrapper: None,
            tensors: [(name.to_string(), bias)].into_iter().collect(),
            layout_mark: None,
        }
    }

    #[test]
    fn the_head_s_classes_are_read_under_every_name_the_zoo_gives_it() {
        for (model, name) in [
            ("resnet50", "fc.bias"),
            ("vgg16_bn", "classifier.6.bias"),
            ("vgg16_bn", "classifier.fc3.bias"),
            ("efficientnet_b0", "classifier.1.bias"),
            ("efficientnet_b0", "classifier.bias"),
            ("mobilenet_v3_large", "classifier.3.bias"),
            ("convnext_tiny", "classifier.2.bias"),
            ("convnext_tiny", "head.fc.bias"),
            ("vit_b_16", "heads.head.bias"),
            ("vit_tiny_patch16_224", "head.bias"),
        ] {
            let kind = ModelKind::named(model).unwrap();
            assert_eq!(
                head_classes(&file_with(name), kind),
                Some(7),
                "{model}: {name}"
            );
        }
        let resnet = ModelKind::named("resnet50").unwrap();
        assert_eq!(head_classes(&file_with("head.bias"), resnet), None);
    }
}
