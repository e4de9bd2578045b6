//! Freezing holds in every family: frozen groups keep weights and BatchNorm statistics, get no
//! gradients, and run their dropout and stochastic depth as at inference.

use std::collections::BTreeMap;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::Distribution;
use regex::Regex;

use super::step;
use crate::engine::model::{
    Classifier, LayerGroup, ModelKind, ModelShape, ModelTask, for_each_tensor, layer_groups,
    with_model,
};

/// Every float tensor (BatchNorm statistics included) whose path a group of `groups` matches.
fn snapshot<M: Module>(model: &M, groups: &[LayerGroup]) -> BTreeMap<String, Vec<f32>> {
    let patterns: Vec<Regex> = groups
        .iter()
        .map(|g| Regex::new(&g.pattern).unwrap())
        .collect();
    let mut values = BTreeMap::new();
    for_each_tensor(model, |t| {
        if patterns.iter().any(|p| p.is_match(t.path)) {
            values.insert(t.path.to_string(), t.values());
        }
    });
    values
}

fn logits<M: Classifier>(model: &M, images: &Tensor<4>) -> Vec<f32> {
    model
        .forward(images.clone())
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

struct FrozenHolds {
    kind: ModelKind,
    size: usize,
    device: Device,
    /// Whether the head has dropout, so a trainable head gives other logits each pass.
    head_dropout: bool,
}

impl ModelTask for FrozenHolds {
    type Output = ();
    fn run<M: Classifier>(self, model: M) {
        let name = self.kind.name();
        let groups = layer_groups(self.kind, &model);
        let (head, body) = groups.split_last().unwrap();
        let images = Tensor::<4>::random(
            [2, 3, self.size, self.size],
            Distribution::Normal(0.0, 1.0),
            &self.device,
        );
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1], [2]), &self.device);

        let mut model = model;
        for group in &groups {
            model = model.freeze_group(group.param_group());
        }
        assert_eq!(
            logits(&model, &images),
            logits(&model, &images),
            "{name}: a frozen model computes as at inference"
        );
        let model = model.unfreeze_group(head.param_group());
        if self.head_dropout {
            assert_ne!(
                logits(&model, &images),
                logits(&model, &images),
                "{name}: a trainable head's dropout is on"
            );
        }

        let frozen = snapshot(&model, body);
        let trained = snapshot(&model, std::slice::from_ref(head));
        let mut optim: ModuleOptimizer = AdamConfig::new().init();
        let mut model = model;
        for _ in 0..2 {
            let (loss, _) = step::loss_and_correct(model.forward(images.clone()), labels.clone());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let mut head_tensors = 0;
            let head_pattern = Regex::new(&head.pattern).unwrap();
            for_each_tensor(&model, |t| {
                if !t.is_statistic() && head_pattern.is_match(t.path) {
                    head_tensors += 1;
                }
            });
            assert_eq!(
                grads.len(),
                head_tensors,
                "{name}: only the head has gradients"
            );
            model = optim.step(1e-2, model, grads);
        }
        assert_eq!(
            snapshot(&model, body),
            frozen,
            "{name}: frozen weights and statistics held"
        );
        let after = snapshot(&model, std::slice::from_ref(head));
        assert!(
            trained.iter().all(|(path, before)| &after[path] != before),
            "{name}: every head tensor trained"
        );
    }
}

fn frozen_holds(name: &str, size: usize, head_dropout: bool) {
    let device = Device::flex().autodiff();
    device.seed(5);
    let kind = ModelKind::named(name).unwrap();
    let shape = ModelShape {
        classes: 2,
        in_channels: 3,
        image_size: size,
    };
    let task = FrozenHolds {
        kind,
        size,
        device: device.clone(),
        head_dropout,
    };
    with_model(kind, shape, &device, task);
}

#[test]
fn a_frozen_bottleneck_resnet_holds() {
    frozen_holds("resnet50", 32, false);
}

#[test]
fn a_frozen_vgg_holds_and_its_head_dropout_follows_the_head() {
    frozen_holds("vgg11_bn", 32, true);
}

#[test]
fn a_frozen_mobilenet_holds_and_its_head_dropout_follows_the_head() {
    frozen_holds("mobilenet_v3_small", 32, true);
    frozen_holds("mobilenet_v2", 32, true);
}

#[test]
fn a_frozen_efficientnet_holds_with_its_stochastic_depth_off() {
    frozen_holds("efficientnet_b0", 32, true);
}
