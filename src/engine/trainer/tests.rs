//! Freezing, measured on what burn produced: parameters, BatchNorm statistics, optimizer
//! moments and gradients.

use std::collections::BTreeMap;

use burn::module::{Module, ParamGroup, ParamId};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::Distribution;

use super::step;
use crate::engine::model::{
    Classifier, LayerGroup, ModelKind, ModelShape, ResNet, ResNetShape, for_each_tensor,
    layer_groups,
};

/// Every float tensor under `prefix` (BatchNorm statistics included), by path.
fn snapshot<M: Module>(model: &M, prefix: &str) -> BTreeMap<String, Vec<f32>> {
    let mut values = BTreeMap::new();
    for_each_tensor(model, |t| {
        if t.path.starts_with(prefix) {
            values.insert(t.path.to_string(), t.values());
        }
    });
    values
}

fn ids<M: Module>(model: &M, prefix: &str, with_stats: bool) -> Vec<ParamId> {
    let mut ids = Vec::new();
    for_each_tensor(model, |t| {
        if t.path.starts_with(prefix) && (with_stats || !t.is_statistic()) {
            ids.push(t.id);
        }
    });
    ids
}

/// The optimizer's state tensors of the given parameters, by name.
fn moments(optim: &ModuleOptimizer, params: &[ParamId]) -> BTreeMap<String, Vec<u8>> {
    let bytes = optim.to_record().into_bytes().expect("record serialises");
    let reader = burn_pack::Reader::from_bytes(bytes).expect("record reads back");
    let prefixes: Vec<String> = params.iter().map(|id| format!("{}.", id.val())).collect();
    reader
        .tensor_names()
        .into_iter()
        .filter(|n| prefixes.iter().any(|p| n.starts_with(p.as_str())))
        .map(|n| (n.to_string(), reader.tensor_data(n).expect("tensor data")))
        .collect()
}

/// The engine's CPU devices in this build: flex, and LibTorch's CPU with feature `tch`.
fn devices() -> Vec<Device> {
    vec![
        Device::flex(),
        #[cfg(feature = "tch")]
        crate::engine::device::DeviceSpec::TchCpu
            .to_device()
            .expect("tch:cpu"),
    ]
}

fn setup(device: &Device) -> (ResNet, Vec<LayerGroup>, Device) {
    let device = device.clone().autodiff();
    device.seed(3);
    let shape = ModelShape {
        classes: 3,
        in_channels: 3,
        image_size: 32,
    };
    let model = ResNet::new(ResNetShape::MINI, shape, &device);
    let groups = layer_groups(ModelKind::RESNET_MINI, &model);
    (model, groups, device)
}

fn batch(device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let images = Tensor::<4>::random([4, 3, 32, 32], Distribution::Normal(0.0, 1.0), device);
    let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 2, 1], [4]), device);
    (images, labels)
}

fn train_step(model: ResNet, optim: &mut ModuleOptimizer, device: &Device) -> ResNet {
    let (images, labels) = batch(device);
    let (loss, _) = step::loss_and_correct(model.forward(images), labels);
    let grads = step::gradients(&loss, &model);
    optim.step(1e-2, model, grads)
}

fn group(groups: &[LayerGroup], name: &str) -> ParamGroup {
    groups
        .iter()
        .find(|g| g.name == name)
        .expect("group exists")
        .param_group()
}

#[test]
fn a_frozen_group_keeps_weights_statistics_and_adam_moments_until_thawed() {
    for device in devices() {
        frozen_group_holds(&device);
    }
}

fn frozen_group_holds(device: &Device) {
    let (model, groups, device) = setup(device);
    let mut optim: ModuleOptimizer = AdamConfig::new().init();
    let model = train_step(model, &mut optim, &device);
    let model = model.freeze_group(group(&groups, "layer1"));

    let frozen_before = snapshot(&model, "layer1.");
    let other_before = snapshot(&model, "layer2.");
    let layer1_ids = ids(&model, "layer1.", false);
    let moments_before = moments(&optim, &layer1_ids);
    assert!(
        !moments_before.is_empty(),
        "the first step gave layer1 Adam moments"
    );
    assert!(frozen_before.keys().any(|k| k.ends_with("running_mean")));

    let model = train_step(model, &mut optim, &device);
    let model = train_step(model, &mut optim, &device);
    assert_eq!(
        snapshot(&model, "layer1."),
        frozen_before,
        "weights and BatchNorm statistics held"
    );
    assert_eq!(
        moments(&optim, &layer1_ids),
        moments_before,
        "Adam moments held"
    );
    let other_after = snapshot(&model, "layer2.");
    for (path, before) in &other_before {
        assert_ne!(
            &other_after[path], before,
            "{path} of a trainable group must change"
        );
    }

    let model = model.unfreeze_group(group(&groups, "layer1"));
    let model = train_step(model, &mut optim, &device);
    let thawed = snapshot(&model, "layer1.");
    for (path, before) in &frozen_before {
        assert_ne!(
            &thawed[path], before,
            "{path} must change again once thawed"
        );
    }
    assert_ne!(moments(&optim, &layer1_ids), moments_before);
}

#[test]
fn frozen_leading_groups_produce_no_gradients() {
    for device in devices() {
        frozen_leading_groups_have_no_gradients(&device);
    }
}

fn frozen_leading_groups_have_no_gradients(device: &Device) {
    let (model, groups, device) = setup(device);
    let (images, labels) = batch(&device);
    let (loss, _) = step::loss_and_correct(model.forward(images.clone()), labels.clone());
    let all = GradientsParams::from_grads(loss.backward(), &model);
    assert_eq!(
        all.len(),
        ids(&model, "", false).len(),
        "every parameter has a gradient"
    );

    let mut model = model;
    for name in ["stem", "layer1", "layer2", "layer3"] {
        model = model.freeze_group(group(&groups, name));
    }
    let (loss, _) = step::loss_and_correct(model.forward(images), labels);
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let trainable = ids(&model, "layer4.", false).len() + ids(&model, "fc.", false).len();
    assert_eq!(
        grads.len(),
        trainable,
        "only layer4 and head are differentiated"
    );
    for prefix in ["conv1.", "bn1.", "layer1.", "layer2.", "layer3."] {
        for id in ids(&model, prefix, false) {
            assert!(
                grads.get::<4>(id).is_none() && grads.get::<1>(id).is_none(),
                "{prefix}"
            );
        }
    }
}
