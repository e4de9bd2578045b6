//! The model zoo: every model, declared once in [`registry`], names its ordered layer groups
//! (stem ... head).

mod classifier;
mod convnext;
mod efficientnet;
mod layers;
mod mbconv;
mod mlp;
mod mobilenet;
mod registry;
mod resnet;
mod tensors;
mod vgg;
mod vit;

use burn::module::{Module, ParamGroup};
use burn::prelude::*;
use serde::Serialize;

pub use classifier::{Classifier, Layout, ModelShape};
pub use convnext::{ConvNext, ConvNextShape};
pub use efficientnet::{EfficientNet, EfficientNetShape};
pub use mlp::Mlp;
pub use mobilenet::{MobileNet, MobileNetShape};
pub use registry::{Architecture, MODELS, ModelEntry, ModelKind};
pub use resnet::{Block, BlockKind, ResNet, ResNetShape};
pub use tensors::{TensorView, for_each_tensor, torchvision_name};
pub use vgg::{Vgg, VggShape};
pub use vit::{Vit, VitShape};

/// One named layer group: a contiguous part of the model a user freezes or thaws as a unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerGroup {
    pub name: String,
    /// Trainable parameters (BatchNorm running statistics are not counted).
    pub params: usize,
    /// Regex over parameter paths (`layer1.0.conv1.weight`) selecting the group.
    #[serde(skip)]
    pub pattern: String,
}

impl LayerGroup {
    /// The burn parameter group that `freeze_group` and per-group rates act on.
    pub fn param_group(&self) -> ParamGroup {
        // The patterns are thaw's own constants, so a bad regex is a programming error.
        ParamGroup::from_regex(&self.pattern).expect("layer group patterns are valid regexes")
    }
}

/// Something to do with a model whose type is only known at run time (see [`with_model`]).
pub trait ModelTask {
    type Output;
    fn run<M: Classifier>(self, model: M) -> Self::Output;
}

/// Builds a fresh model of `kind` on `device` and hands it to `task`.
pub fn with_model<T: ModelTask>(
    kind: ModelKind,
    shape: ModelShape,
    device: &Device,
    task: T,
) -> T::Output {
    match kind.architecture() {
        Architecture::ResNet(resnet) => task.run(ResNet::new(resnet, shape, device)),
        Architecture::Vgg(vgg) => task.run(Vgg::new(vgg, shape, device)),
        Architecture::MobileNet(net) => task.run(MobileNet::new(net, shape, device)),
        Architecture::EfficientNet(net) => task.run(EfficientNet::new(net, shape, device)),
        Architecture::ConvNext(net) => task.run(ConvNext::new(net, shape, device)),
        Architecture::Vit(net) => task.run(Vit::new(net, shape, device)),
        Architecture::Mlp => task.run(Mlp::new(shape, device)),
    }
}

/// The layer groups of a model of `kind` and `shape`, with their parameter counts, from a model
/// built on the CPU only to count them (parameters are initialised lazily: no weights are
/// allocated).
pub fn groups_of(kind: ModelKind, shape: ModelShape) -> Vec<LayerGroup> {
    struct Groups(ModelKind);
    impl ModelTask for Groups {
        type Output = Vec<LayerGroup>;
        fn run<M: Classifier>(self, model: M) -> Vec<LayerGroup> {
            layer_groups(self.0, &model)
        }
    }
    with_model(kind, shape, &Device::flex(), Groups(kind))
}

/// The layer groups of a built model, with their parameter counts.
pub fn layer_groups<M: Module>(kind: ModelKind, model: &M) -> Vec<LayerGroup> {
    let patterns = kind.group_patterns();
    let regexes: Vec<regex::Regex> = patterns
        .iter()
        .map(|(_, p)| regex::Regex::new(p).expect("layer group patterns are valid regexes"))
        .collect();
    let mut counts = vec![0; patterns.len()];
    for_each_tensor(model, |t| {
        if t.is_statistic() {
            return;
        }
        if let Some(i) = regexes.iter().position(|r| r.is_match(t.path)) {
            counts[i] += t.shape.iter().product::<usize>();
        }
    });
    patterns
        .iter()
        .zip(counts)
        .map(|((name, pattern), params)| LayerGroup {
            name: name.to_string(),
            params,
            pattern: pattern.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flex() -> Device {
        Device::flex()
    }

    #[test]
    fn resnet18_matches_torchvision_parameter_counts() {
        let shape = ModelShape {
            classes: 1000,
            in_channels: 3,
            image_size: 224,
        };
        let model = ResNet::new(ResNetShape::RESNET18, shape, &flex());
        let groups = layer_groups(ModelKind::RESNET18, &model);
        let names: Vec<_> = groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(
            names,
            ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
        );
        // torchvision.models.resnet18(): 11,689,512 parameters; fc 513,000; layer4 8,393,728.
        assert_eq!(groups.iter().map(|g| g.params).sum::<usize>(), 11_689_512);
        assert_eq!(groups[5].params, 513_000);
        assert_eq!(groups[4].params, 8_393_728);
        assert_eq!(groups[0].params, 9_536);
    }

    #[test]
    fn resnet34_matches_torchvision_parameter_count() {
        let shape = ModelShape {
            classes: 1000,
            in_channels: 3,
            image_size: 224,
        };
        let model = ResNet::new(ResNetShape::RESNET34, shape, &flex());
        let total: usize = layer_groups(ModelKind::RESNET34, &model)
            .iter()
            .map(|g| g.params)
            .sum();
        assert_eq!(total, 21_797_672);
    }

    #[test]
    fn any_classes_and_channels_give_logits_of_the_right_shape() {
        let device = flex();
        for (kind, channels, classes) in [
            (ModelKind::RESNET_MINI, 1, 7),
            (ModelKind::RESNET_MINI, 3, 2),
            (ModelKind::MLP, 3, 4),
        ] {
            let shape = ModelShape {
                classes,
                in_channels: channels,
                image_size: 32,
            };
            let x = Tensor::<4>::zeros([2, channels, 32, 32], &device);
            struct Dims(Tensor<4>);
            impl ModelTask for Dims {
                type Output = [usize; 2];
                fn run<M: Classifier>(self, model: M) -> [usize; 2] {
                    model.forward(self.0).dims()
                }
            }
            let dims = with_model(kind, shape, &device, Dims(x));
            assert_eq!(dims, [2, classes], "{kind}");
        }
    }

    #[test]
    fn every_parameter_belongs_to_exactly_one_group() {
        let shape = ModelShape {
            classes: 5,
            in_channels: 3,
            image_size: 32,
        };
        let model = ResNet::new(ResNetShape::MINI, shape, &flex());
        let grouped: usize = layer_groups(ModelKind::RESNET_MINI, &model)
            .iter()
            .map(|g| g.params)
            .sum();
        let bn_stats: usize = 2 * batch_norm_channels(&model);
        assert_eq!(grouped + bn_stats, model.num_params());
    }

    fn batch_norm_channels(model: &ResNet) -> usize {
        let mut channels = 0;
        for_each_tensor(model, |t| {
            if t.path.ends_with("running_mean") {
                channels += t.shape.iter().product::<usize>();
            }
        });
        channels
    }

    #[test]
    fn unknown_model_lists_the_zoo() {
        let err = "resnet5".parse::<ModelKind>().unwrap_err();
        assert!(err.contains("resnet18, resnet34, resnet50, "), "{err}");
        assert!(err.ends_with(", resnet-mini, mlp"), "{err}");
    }

    /// The same weights, written by flex and read by LibTorch, give the same logits.
    #[cfg(feature = "tch")]
    #[test]
    fn flex_and_tch_cpu_agree_on_the_logits_of_the_same_weights() {
        use crate::engine::device::DeviceSpec;
        use crate::engine::weights::{TransferRules, WeightsFile, transfer};

        let shape = ModelShape {
            classes: 10,
            in_channels: 3,
            image_size: 32,
        };
        let device = flex();
        device.seed(11);
        let ours = ResNet::new(ResNetShape::RESNET18, shape, &device);
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("resnet18.bpk");
        ours.clone().save_file(&path).expect("saved");
        let tch = DeviceSpec::TchCpu.to_device().expect("tch:cpu");
        let theirs = ResNet::new(ResNetShape::RESNET18, shape, &tch);
        let groups = layer_groups(ModelKind::RESNET18, &theirs);
        let file = WeightsFile::read(&path).expect("read back");
        let (theirs, report) =
            transfer(theirs, &groups, &file, &TransferRules::default()).expect("loads");
        assert_eq!(report.tensors_transferred, report.tensors_total);

        // A fixed, varied batch (no random generator shared between backends).
        let values: Vec<f32> = (0..4 * 3 * 32 * 32)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let batch = TensorData::new(values, [4, 3, 32, 32]);
        let logits = |model: &ResNet, device: &Device| -> Vec<f32> {
            let x = Tensor::<4>::from_data(batch.clone(), device);
            model
                .forward(x)
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .expect("f32 logits")
        };
        let (a, b) = (logits(&ours, &device), logits(&theirs, &tch));
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "flex and tch:cpu differ by {worst}");
        assert!(a.iter().any(|v| v.abs() > 1e-3), "the logits say something");
    }

    /// LibTorch's convolution weight gradient, which thaw's burn-tch uses
    /// (vendor/burn-tch/THAW.md), agrees with burn's own formula on flex, one convolution at a
    /// time: a ResNet stem, 3x3s of both strides, a 1x1 stride-2 shortcut, a dilated, a
    /// grouped and an asymmetrically padded one.
    #[cfg(feature = "tch")]
    #[test]
    fn flex_and_tch_cpu_agree_on_convolution_weight_gradients() {
        use crate::engine::device::DeviceSpec;
        use burn::tensor::module::{conv2d, conv2d_weight_backward};
        use burn::tensor::ops::ConvOptions;

        struct Case {
            what: &'static str,
            channels: [usize; 2],
            kernel: usize,
            size: usize,
            options: ConvOptions<2>,
        }
        let case = |what, channels, kernel, size, stride, padding, dilation, groups| Case {
            what,
            channels,
            kernel,
            size,
            options: ConvOptions::new_with_padding(
                [stride; 2],
                [padding; 2],
                [dilation; 2],
                groups,
            ),
        };
        let cases = [
            case(
                "7x7 stride 2 (a ResNet stem)",
                [3, 8],
                7,
                20,
                2,
                (3, 3),
                1,
                1,
            ),
            case("3x3 stride 1", [4, 6], 3, 9, 1, (1, 1), 1, 1),
            case("3x3 stride 2", [4, 6], 3, 9, 2, (1, 1), 1, 1),
            case("1x1 stride 2 (a shortcut)", [4, 6], 1, 9, 2, (0, 0), 1, 1),
            case("3x3 dilation 2", [4, 6], 3, 9, 1, (2, 2), 2, 1),
            case("3x3 in 2 groups", [4, 6], 3, 9, 1, (1, 1), 1, 2),
            case("3x3 stride 2, padded (0, 1)", [4, 6], 3, 9, 2, (0, 1), 1, 1),
        ];
        // Fixed, varied values (no random generator shared between backends).
        let values = |n: usize, salt: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (((i + salt) * 7919) % 1000) as f32 / 500.0 - 1.0)
                .collect()
        };
        let tch = DeviceSpec::TchCpu.to_device().expect("tch:cpu");
        for Case {
            what,
            channels: [cin, cout],
            kernel,
            size,
            options,
        } in cases
        {
            let x_shape = [2, cin, size, size];
            let w_shape = [cout, cin / options.groups, kernel, kernel];
            let x = values(x_shape.iter().product(), 1);
            let w = values(w_shape.iter().product(), 2);
            let on = |device: &Device, grad: Option<&TensorData>| {
                let x = Tensor::<4>::from_data(TensorData::new(x.clone(), x_shape), device);
                let w = Tensor::<4>::from_data(TensorData::new(w.clone(), w_shape), device);
                match grad {
                    None => conv2d(x, w, None, options.clone()).into_data(),
                    Some(grad) => {
                        let grad = Tensor::<4>::from_data(grad.clone(), device);
                        conv2d_weight_backward(x, w, grad, options.clone()).into_data()
                    }
                }
            };
            let out = on(&flex(), None);
            let grad = TensorData::new(values(out.num_elements(), 3), out.shape().to_vec());
            let ours = on(&flex(), Some(&grad));
            let theirs = on(&tch, Some(&grad));
            assert_eq!(ours.shape(), theirs.shape(), "{what}");
            let (ours, theirs) = (
                ours.try_to_vec::<f32>().expect("f32"),
                theirs.try_to_vec::<f32>().expect("f32"),
            );
            let scale = ours.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let worst = ours
                .iter()
                .zip(&theirs)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(scale > 0.1, "{what}: a gradient of zeros says nothing");
            assert!(
                worst <= 1e-4 * scale,
                "{what}: flex and tch:cpu differ by {worst} (largest {scale})"
            );
        }
    }
}
