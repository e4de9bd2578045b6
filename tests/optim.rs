//! Optimisation steps against PyTorch: `grad_clip_norm` clips as `clip_grad_norm_` does.

mod common;

use std::collections::BTreeMap;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::Distribution;
use thaw::engine::model::{Classifier, Mlp, ModelKind, ModelShape, for_each_tensor, layer_groups};
use thaw::engine::trainer::step;

/// One batch through thaw's MLP, its gradients clipped to `max_norm` with `frozen` groups
/// frozen, beside PyTorch's on the same weights and batch.
fn clipped_beside_pytorch(max_norm: f64, frozen: &[&str]) {
    let device = Device::flex().autodiff();
    device.seed(11);
    let shape = ModelShape {
        classes: 5,
        in_channels: 1,
        image_size: 6,
    };
    let mut model = Mlp::new(shape, &device);
    for group in layer_groups(ModelKind::MLP, &model) {
        if frozen.contains(&group.name.as_str()) {
            model = model.freeze_group(group.param_group());
        }
    }
    let images = Tensor::<4>::random([8, 1, 6, 6], Distribution::Normal(0.0, 1.0), &device);
    let labels = vec![0i64, 1, 2, 3, 4, 0, 1, 2];
    let targets = Tensor::<1, Int>::from_data(TensorData::new(labels.clone(), [8]), &device);
    let (loss, _) = step::loss_and_correct(model.forward(images.clone()), targets);
    let mut grads = step::gradients(&loss, &model);
    let clip = step::clip_grad_norm(&mut grads, &model, max_norm);

    let mut params = Vec::new();
    let mut frozen_names = Vec::new();
    let mut ours = BTreeMap::new();
    for_each_tensor(&model, |t| {
        params.push(serde_json::json!({
            "name": t.path, "shape": t.shape, "values": t.values(),
        }));
        match grad(&grads, t.id, t.shape.len()) {
            Some(values) => {
                ours.insert(t.path.to_string(), values);
            }
            None => frozen_names.push(t.path.to_string()),
        }
    });
    let case = serde_json::json!({
        "x": images.into_data().try_to_vec::<f32>().unwrap(),
        "x_shape": [8, 1, 6, 6],
        "labels": labels,
        "params": params,
        "frozen": frozen_names,
        "max_norm": max_norm,
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("case.json");
    std::fs::write(&file, case.to_string()).unwrap();
    let out = common::pytorch("clip_step.py", &[file.as_os_str()]);
    let theirs: serde_json::Value = serde_json::from_slice(&out).unwrap();

    let their_norm = theirs["norm"].as_f64().unwrap();
    assert!(
        (clip.norm - their_norm).abs() <= 1e-5 * their_norm,
        "norm {} vs PyTorch {their_norm}",
        clip.norm
    );
    assert_eq!(
        clip.scaled,
        their_norm > max_norm,
        "scaled down exactly when the norm is above {max_norm}"
    );
    let theirs = theirs["grads"].as_object().unwrap();
    assert_eq!(
        theirs.keys().collect::<Vec<_>>(),
        ours.keys().collect::<Vec<_>>(),
        "the same parameters have gradients"
    );
    for (name, values) in &ours {
        let expected: Vec<f32> = serde_json::from_value(theirs[name].clone()).unwrap();
        let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = values
            .iter()
            .zip(&expected)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            diff <= 1e-4 * scale + 1e-7,
            "{name}: gradients differ by {diff} (largest {scale})"
        );
    }
}

/// A parameter's gradient as flat values, if it has one.
fn grad(grads: &GradientsParams, id: burn::module::ParamId, rank: usize) -> Option<Vec<f32>> {
    let data = match rank {
        1 => grads.get::<1>(id)?.into_data(),
        2 => grads.get::<2>(id)?.into_data(),
        other => panic!("an MLP has no rank-{other} parameters"),
    };
    Some(data.try_to_vec::<f32>().unwrap())
}

#[test]
fn gradients_are_clipped_to_the_global_norm_as_pytorch_clips_them() {
    if common::python().is_none() {
        return;
    }
    // Well under the norm (every gradient scaled), above it (none), and with the first group
    // frozen: its parameters have no gradients and do not count towards the norm.
    for (max_norm, frozen) in [(0.05, &[][..]), (1e6, &[][..]), (0.05, &["stem"][..])] {
        clipped_beside_pytorch(max_norm, frozen);
    }
}
