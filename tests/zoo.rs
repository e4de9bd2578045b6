//! The model zoo against torchvision and timm themselves: parameter counts, eval-mode logits
//! of the same weights, exports that load back with `strict=True`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;
use thaw::cli::export::write_weights;
use thaw::engine::model::{
    Classifier, Layout, MODELS, ModelKind, ModelShape, ModelTask, groups_of, layer_groups,
    with_model,
};
use thaw::engine::weights::{TransferReport, TransferRules, WeightsFile, transfer};

/// The engine's device in this build: flex, or LibTorch's CPU in a `tch` build, so that the
/// zoo is checked against PyTorch on both.
fn device() -> Device {
    #[cfg(feature = "tch")]
    return thaw::engine::device::DeviceSpec::TchCpu
        .to_device()
        .expect("tch:cpu");
    #[cfg(not(feature = "tch"))]
    Device::flex()
}

/// The registry's zoo models with the reference that defines each: torchvision's model of
/// the same name, or timm's (`timm:vit_tiny_patch16_224`) for timm's names.
fn references() -> Vec<(&'static str, String)> {
    MODELS
        .iter()
        .map(|m| m.name)
        .filter(|name| !matches!(*name, "resnet-mini" | "mlp"))
        .map(|name| match name.ends_with("_224") {
            true => (name, format!("timm:{name}")),
            false => (name, name.to_string()),
        })
        .collect()
}

#[test]
fn every_variant_has_its_references_parameter_count() {
    if common::python().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("counts.json");
    let names = references();
    let mut args = vec![std::ffi::OsStr::new("counts"), out.as_os_str()];
    args.extend(names.iter().map(|(_, r)| std::ffi::OsStr::new(r)));
    common::pytorch("zoo.py", &args);
    let counts: BTreeMap<String, usize> =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    for (name, reference) in names {
        let kind = ModelKind::named(name).unwrap();
        let shape = ModelShape {
            classes: 1000,
            in_channels: 3,
            image_size: 224,
        };
        let ours: usize = groups_of(kind, shape).iter().map(|g| g.params).sum();
        assert_eq!(
            ours, counts[&reference],
            "{name}: thaw's parameters against {reference}'s"
        );
    }
}

/// Loads `file` into a fresh model and compares its eval-mode logits on `io`'s batch with
/// PyTorch's; then exports it and has PyTorch load the export strictly.
struct Parity<'a> {
    kind: ModelKind,
    name: &'a str,
    classes: usize,
    dir: &'a Path,
    file: &'a str,
}

impl ModelTask for Parity<'_> {
    type Output = TransferReport;
    fn run<M: Classifier>(self, model: M) -> TransferReport {
        let groups = layer_groups(self.kind, &model);
        let file = WeightsFile::read(&self.dir.join(self.file)).expect("file reads");
        let rules = TransferRules::for_model(self.kind);
        let (model, report) = transfer(model, &groups, &file, &rules).expect("transfer");
        assert_eq!(
            (report.tensors_transferred, &report.new, &report.mismatched),
            (report.tensors_total, &vec![], &vec![]),
            "{}: everything transfers",
            self.name
        );
        assert!(
            report
                .unused
                .iter()
                .all(|u| u.ends_with("num_batches_tracked")),
            "{}: unused {:?}",
            self.name,
            report.unused
        );
        let io = WeightsFile::read(&self.dir.join("io.safetensors")).unwrap();
        let (x, y) = (&io.tensors["x"], &io.tensors["y"]);
        let input = Tensor::<4>::from_data(
            TensorData::new(x.values.clone().unwrap(), x.shape.clone()),
            &device(),
        );
        let logits = model
            .forward(input)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let expected = y.values.clone().unwrap();
        let scale = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let worst = logits
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(scale > 0.0, "{}: logits of zeros say nothing", self.name);
        assert!(
            worst <= 1e-4 * scale,
            "{}: logits differ from PyTorch's by {worst} (largest {scale})",
            self.name
        );

        let export = self.dir.join("export.safetensors");
        let layout = report.layout.expect("a PyTorch file has a layout");
        write_weights(&model, layout, &export).expect("export");
        let out = common::pytorch(
            "zoo.py",
            &[
                "check".as_ref(),
                export.as_os_str(),
                self.name.as_ref(),
                self.classes.to_string().as_ref(),
                self.dir.join("io.safetensors").as_os_str(),
            ],
        );
        let checked: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let diff = checked["max_diff"].as_f64().unwrap() as f32;
        assert!(
            diff <= 1e-4 * scale,
            "{}: the export's logits in PyTorch differ by {diff}",
            self.name
        );
        report
    }
}

/// A random `name` written by PyTorch and read by thaw gives PyTorch's logits; `file` is
/// `model.pth` or `model.safetensors`.
fn same_logits(name: &str, classes: usize, size: usize, file: &str) -> Option<TransferReport> {
    common::python()?;
    let dir = tempfile::tempdir().unwrap();
    common::pytorch(
        "zoo.py",
        &[
            "write".as_ref(),
            dir.path().as_os_str(),
            name.as_ref(),
            classes.to_string().as_ref(),
            size.to_string().as_ref(),
            file.as_ref(),
        ],
    );
    let kind = ModelKind::named(name.trim_start_matches("timm:")).expect("a registry model");
    let shape = ModelShape {
        classes,
        in_channels: 3,
        image_size: size,
    };
    let task = Parity {
        kind,
        name,
        classes,
        dir: dir.path(),
        file,
    };
    Some(with_model(kind, shape, &device(), task))
}

#[test]
fn bottleneck_resnets_give_torchvisions_logits() {
    for (name, file) in [
        ("resnet50", "model.pth"),
        ("resnext101_32x8d", "model.safetensors"),
        // timm's ResNets have torchvision's names.
        ("timm:resnet50", "model.safetensors"),
    ] {
        let Some(report) = same_logits(name, 7, 64, file) else {
            return;
        };
        assert_eq!(report.layout, Some(Layout::Torchvision), "{name}");
    }
}

#[test]
fn vggs_give_torchvisions_logits() {
    for (name, file) in [("vgg11", "model.pth"), ("vgg19_bn", "model.safetensors")] {
        let Some(report) = same_logits(name, 5, 32, file) else {
            return;
        };
        assert_eq!(report.layout, Some(Layout::Torchvision), "{name}");
        assert!(
            report.lines()[0].ends_with("(torchvision's names)"),
            "{:?}",
            report.lines()
        );
    }
}

#[test]
fn mobilenets_give_torchvisions_logits() {
    for (name, file) in [
        ("mobilenet_v2", "model.pth"),
        ("mobilenet_v3_small", "model.safetensors"),
        ("mobilenet_v3_large", "model.pth"),
    ] {
        let Some(report) = same_logits(name, 4, 64, file) else {
            return;
        };
        assert_eq!(report.layout, Some(Layout::Torchvision), "{name}");
    }
}

#[test]
fn efficientnets_give_torchvisions_and_timms_logits() {
    for (name, size, file) in [
        ("efficientnet_b0", 64, "model.pth"),
        ("efficientnet_b7", 32, "model.safetensors"),
        ("efficientnet_v2_s", 64, "model.safetensors"),
        ("efficientnet_v2_l", 32, "model.pth"),
        ("timm:efficientnet_b0", 64, "model.safetensors"),
    ] {
        let Some(report) = same_logits(name, 3, size, file) else {
            return;
        };
        let layout = match name.starts_with("timm:") {
            true => Layout::Timm,
            false => Layout::Torchvision,
        };
        assert_eq!(report.layout, Some(layout), "{name}");
    }
}

#[test]
fn convnexts_give_torchvisions_and_timms_logits() {
    for (name, file, layout) in [
        ("convnext_tiny", "model.pth", Layout::Torchvision),
        ("convnext_large", "model.safetensors", Layout::Torchvision),
        ("timm:convnext_tiny", "model.safetensors", Layout::Timm),
    ] {
        let Some(report) = same_logits(name, 3, 32, file) else {
            return;
        };
        assert_eq!(report.layout, Some(layout), "{name}");
    }
}

#[test]
fn vits_give_torchvisions_and_timms_logits() {
    for (name, size, file, layout) in [
        ("vit_b_32", 64, "model.pth", Layout::Torchvision),
        ("vit_l_16", 32, "model.safetensors", Layout::Torchvision),
        (
            "timm:vit_tiny_patch16_224",
            48,
            "model.safetensors",
            Layout::Timm,
        ),
        ("timm:vit_base_patch16_224", 32, "model.pth", Layout::Timm),
    ] {
        let Some(report) = same_logits(name, 3, size, file) else {
            return;
        };
        assert_eq!(report.layout, Some(layout), "{name}");
    }
}

/// A ViT's position embeddings at another image size against timm's
/// `resample_abs_pos_embed` of the same tensor: larger and smaller grids.
#[test]
fn position_embeddings_resample_as_timm_does() {
    if common::python().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (old, dim) = (14, 6);
    let values: Vec<f32> = (0..(1 + old * old) * dim)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1, 197, dim], &bytes)
            .unwrap();
    let input = dir.path().join("pos.safetensors");
    std::fs::write(
        &input,
        safetensors::serialize([("pos", view)], None).unwrap(),
    )
    .unwrap();
    let output = dir.path().join("out.safetensors");
    let sides = [24usize, 4, 9, 14];
    let mut args = vec!["resample".as_ref(), input.as_os_str(), output.as_os_str()];
    let names: Vec<String> = sides.iter().map(usize::to_string).collect();
    args.extend(names.iter().map(std::ffi::OsStr::new));
    common::pytorch("zoo.py", &args);
    let theirs = WeightsFile::read(&output).unwrap();
    for side in sides {
        let ours = thaw::engine::weights::resample_positions(&values, 1, old, side, dim);
        let expected = theirs.tensors[&side.to_string()].values.clone().unwrap();
        assert_eq!(ours.len(), expected.len(), "{side}");
        let worst = ours
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= 1e-5, "14x14 -> {side}x{side}: {worst} from timm's");
    }
}

/// timm's ViT trained at 32x32 loads into one at 64x64: the grid of position embeddings is
/// resampled and the report says so; the rest transfers as it is.
#[test]
fn a_vit_at_another_image_size_gets_resampled_position_embeddings() {
    if common::python().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let name = "timm:vit_tiny_patch16_224";
    common::pytorch(
        "zoo.py",
        &[
            "write".as_ref(),
            dir.path().as_os_str(),
            name.as_ref(),
            "3".as_ref(),
            "32".as_ref(),
            "model.safetensors".as_ref(),
        ],
    );
    struct Load<'a>(&'a Path, ModelKind);
    impl ModelTask for Load<'_> {
        type Output = TransferReport;
        fn run<M: Classifier>(self, model: M) -> TransferReport {
            let groups = layer_groups(self.1, &model);
            let file = WeightsFile::read(&self.0.join("model.safetensors")).unwrap();
            transfer(model, &groups, &file, &TransferRules::for_model(self.1))
                .unwrap()
                .1
        }
    }
    let kind = ModelKind::named("vit_tiny_patch16_224").unwrap();
    let shape = ModelShape {
        classes: 3,
        in_channels: 3,
        image_size: 64,
    };
    let report = with_model(kind, shape, &Device::flex(), Load(dir.path(), kind));
    assert_eq!(
        report.tensors_transferred, report.tensors_total,
        "{report:?}"
    );
    assert_eq!(
        report.adapted["encoder.pos_embedding"],
        "resampled pos_embed 2x2 -> 4x4"
    );
    assert!(
        report
            .lines()
            .iter()
            .any(|l| l == "encoder.pos_embedding: resampled pos_embed 2x2 -> 4x4"),
        "{:?}",
        report.lines()
    );
}
