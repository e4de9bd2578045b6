//! Weights files into thaw models, with PyTorch as the reference.

mod common;

use std::path::Path;

use burn::module::Module;
use burn::prelude::*;
use thaw::engine::model::{
    Classifier, Mlp, ModelKind, ModelShape, ResNet, ResNetShape, for_each_tensor, layer_groups,
};
use thaw::engine::weights::{TransferReport, TransferRules, WeightsFile, transfer};

/// PyTorch's files, written once per test into a temporary folder.
fn pytorch_files() -> Option<tempfile::TempDir> {
    common::python()?;
    let dir = tempfile::tempdir().unwrap();
    common::pytorch("write_resnet18.py", &[dir.path().as_os_str()]);
    Some(dir)
}

fn resnet18(classes: usize, in_channels: usize) -> ResNet {
    let shape = ModelShape {
        classes,
        in_channels,
        image_size: 64,
    };
    ResNet::new(ResNetShape::RESNET18, shape, &Device::flex())
}

fn load(model: ResNet, file: &Path) -> (ResNet, TransferReport) {
    let groups = layer_groups(ModelKind::RESNET18, &model);
    let file = WeightsFile::read(file).expect("file reads");
    let rules = TransferRules {
        input_conv: Some("conv1.weight".into()),
        ..Default::default()
    };
    transfer(model, &groups, &file, &rules).expect("transfer succeeds")
}

fn values(file: &WeightsFile, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = &file.tensors[name];
    (t.shape.clone(), t.values.clone().unwrap())
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn torchvision_resnet18_gives_pytorchs_logits_in_every_format() {
    let Some(dir) = pytorch_files() else { return };
    let io = WeightsFile::read(&dir.path().join("io.safetensors")).unwrap();
    let (x_shape, x) = values(&io, "x");
    let (_, expected) = values(&io, "y");
    for name in [
        "r18.pth",
        "wrapped.pth",
        "lightning.ckpt",
        "r18.safetensors",
    ] {
        let (model, report) = load(resnet18(10, 3), &dir.path().join(name));
        assert_eq!(report.tensors_transferred, report.tensors_total, "{name}");
        assert!(
            report.new.is_empty() && report.mismatched.is_empty(),
            "{name}: {report:?}"
        );
        assert_eq!(
            report.unused.len(),
            20,
            "{name}: num_batches_tracked only: {:?}",
            report.unused
        );
        assert!(
            report
                .unused
                .iter()
                .all(|u| u.ends_with("num_batches_tracked"))
        );
        let input =
            Tensor::<4>::from_data(TensorData::new(x.clone(), x_shape.clone()), &Device::flex());
        let logits = model
            .valid()
            .forward(input)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let diff = max_diff(&logits, &expected);
        assert!(
            diff < 1e-4,
            "{name}: logits differ from PyTorch's by {diff}"
        );
    }
}

#[test]
fn a_ten_class_file_into_a_three_class_model_keeps_a_new_head() {
    let Some(dir) = pytorch_files() else { return };
    let (_, report) = load(resnet18(3, 3), &dir.path().join("r18.pth"));
    assert_eq!(report.tensors_total, 102);
    assert_eq!(report.tensors_transferred, 100);
    assert_eq!(report.params_total, 11_176_512 + 512 * 3 + 3);
    assert_eq!(report.params_transferred, 11_176_512);
    assert_eq!(report.new, Vec::<String>::new());
    let mismatched: Vec<&str> = report.mismatched.iter().map(|m| m.path.as_str()).collect();
    assert_eq!(mismatched, ["fc.weight", "fc.bias"]);
    let summary: Vec<String> = report
        .groups
        .iter()
        .map(|g| format!("{}: {}", g.name, g.summary()))
        .collect();
    assert_eq!(
        summary,
        [
            "stem: 100% pretrained",
            "layer1: 100% pretrained",
            "layer2: 100% pretrained",
            "layer3: 100% pretrained",
            "layer4: 100% pretrained",
            "head: new"
        ]
    );
    assert!(
        report.notes[0].contains("head re-initialised: the file has 10 classes, the model 3"),
        "{:?}",
        report.notes
    );
}

fn conv1(model: &ResNet) -> Vec<f32> {
    model
        .conv1
        .weight
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

#[test]
fn the_first_convolution_is_adapted_to_other_input_channels() {
    let Some(dir) = pytorch_files() else { return };
    let file = WeightsFile::read(&dir.path().join("r18.pth")).unwrap();
    let (_, rgb) = values(&file, "conv1.weight");
    let k = 49;
    let (gray, report) = load(resnet18(10, 1), &dir.path().join("r18.pth"));
    assert!(
        report.adapted["conv1.weight"].contains("summed"),
        "{report:?}"
    );
    let summed: Vec<f32> = (0..64)
        .flat_map(|o| (0..k).map(move |i| (o, i)))
        .map(|(o, i)| (0..3).map(|c| rgb[(o * 3 + c) * k + i]).sum())
        .collect();
    assert!(max_diff(&conv1(&gray), &summed) < 1e-6);

    let (five, report) = load(resnet18(10, 5), &dir.path().join("r18.pth"));
    assert!(
        report.adapted["conv1.weight"].contains("repeated"),
        "{report:?}"
    );
    let w = conv1(&five);
    for (o, c, i) in [(0, 0, 0), (3, 4, 10), (63, 3, 48)] {
        let expected = rgb[(o * 3 + c % 3) * k + i] * 3.0 / 5.0;
        assert!((w[(o * 5 + c) * k + i] - expected).abs() < 1e-6);
    }
    assert_eq!(report.tensors_transferred, report.tensors_total);
}

#[test]
fn broken_files_are_errors_that_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let mut lying = Vec::new();
    let header = br#"{"w":{"dtype":"F32","shape":[1000],"data_offsets":[0,4000]}}"#;
    lying.extend_from_slice(&(header.len() as u64).to_le_bytes());
    lying.extend_from_slice(header);
    lying.extend_from_slice(&[0u8; 16]);
    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let cases = [
        (write("empty.pth", b""), "not a PyTorch state dict"),
        (write("empty.safetensors", b""), "not a safetensors file"),
        (
            write("empty.bpk", b""),
            "not a burnpack file (it is empty or cut short)",
        ),
        (write("random.pth", &random), "not a PyTorch state dict"),
        (write("random.bpk", &random), "not a burnpack file"),
        (write("lying.safetensors", &lying), "not a safetensors file"),
        (
            write("weights.txt", b"hello"),
            "expected .bpk, .safetensors, .pt or .pth",
        ),
        (dir.path().join("missing.pth"), "no such file"),
        (
            {
                let p = dir.path().join("folder.bpk");
                std::fs::create_dir(&p).unwrap();
                p
            },
            "is a directory",
        ),
    ];
    for (path, expected) in cases {
        let err = WeightsFile::read(&path).expect_err("refused").to_string();
        assert!(err.contains(path.to_str().unwrap()), "{err}");
        assert!(err.contains(expected), "{}: {err}", path.display());
    }
    let Some(torch) = pytorch_files() else { return };
    let evil = WeightsFile::read(&torch.path().join("evil.pth"))
        .expect_err("refused")
        .to_string();
    assert!(
        evil.contains("system") && evil.contains("never runs code"),
        "{evil}"
    );
    let bytes = std::fs::read(torch.path().join("r18.pth")).unwrap();
    for cut in [bytes.len() / 2, bytes.len() - 100, 200] {
        let path = write("truncated.pth", &bytes[..cut]);
        let err = WeightsFile::read(&path)
            .expect_err("truncated file refused")
            .to_string();
        assert!(err.contains("truncated.pth"), "{err}");
    }
}

/// Numbers the model is built from are checked before anything is read or allocated: a
/// size of 0 used to panic, 100000 to abort for want of 120 GB.
#[test]
fn predict_and_transfer_refuse_sizes_no_model_has() {
    let home = common::Home::new();
    let cases: &[(&[&str], &str)] = &[
        (&["predict", "--image-size", "0"], "from 1 to 2048"),
        (&["predict", "--image-size", "100000"], "from 1 to 2048"),
        (&["predict", "--top", "0"], "classes to print"),
        (
            &["predict", "--classes", "0"],
            "classes of the model's head",
        ),
        (
            &["weights", "transfer", "--in-channels", "2"],
            "1 (grayscale) or 3 (RGB)",
        ),
        (
            &["weights", "transfer", "--classes", "100000000000"],
            "from 1 to 100000",
        ),
    ];
    for (args, expected) in cases {
        let mut all = args.to_vec();
        match args[0] {
            "predict" => all.extend(["--model", "mlp", "--weights", "w.bpk", "a.png"]),
            _ => all.extend(["w.bpk", "--model", "mlp"]),
        }
        let out = home.run_cmd(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn a_file_that_fits_nothing_changes_nothing_and_the_run_does_not_start() {
    let home = common::Home::new();
    let other = resnet18(10, 3);
    let path = home.path().join("other.bpk");
    // A model whose names share nothing with an MLP.
    other.save_file(&path).unwrap();
    let text = format!(
        "name = \"s\"\n[defaults]\nmodel = \"mlp\"\ndata = \"demo:shapes-small\"\ndevice = \"flex\"\n[[runs]]\nname = \"r\"\nweights = \"{}\"\n",
        path.display()
    );
    let file = home.write("s.toml", &text);
    let out = home.run_cmd(&["train", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let run = home.run_dir("s", "r");
    let state = run.read_state().unwrap();
    let why = state.message.unwrap();
    assert!(
        why.contains("nothing in") && why.contains("fits the model"),
        "{why}"
    );
    assert_eq!(state.step, 0);
    assert!(thaw::engine::checkpoint::latest(&run).is_none());
}

#[test]
fn pretrain_then_fine_tune_hands_over_best_weights() {
    let home = common::Home::new();
    let file = home.write(
        "p.toml",
        r#"
name = "p"
[defaults]
model = "resnet-mini"
data = "demo:shapes-small"
epochs = 1
device = "flex"
batch_size = 16
[[runs]]
name = "ft"
weights = "run:pre/best"
freeze = ["stem", "layer1"]
[[runs]]
name = "pre"
data = "demo:shapes"
"#,
    );
    let out = home.run_cmd(&["train", file.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("ft") && stdout.contains("waiting"),
        "{stdout}"
    );
    let ft = home.run_dir("p", "ft");
    let weights = common::events(&ft, "weights");
    assert_eq!(weights.len(), 1);
    assert!(
        weights[0].message.contains("run:pre/best"),
        "{}",
        weights[0].message
    );
    assert!(
        weights[0].message.contains("head: new"),
        "{}",
        weights[0].message
    );
    let report: TransferReport =
        serde_json::from_slice(&std::fs::read(ft.root.join("transfer.json")).unwrap()).unwrap();
    assert_eq!(report.tensors_transferred, report.tensors_total - 2);
    // The fine-tuning run started after the pretraining run ended.
    let pre_done = common::events(&home.run_dir("p", "pre"), "finished")[0].time;
    assert!(weights[0].time >= pre_done);

    // Its frozen stem is the pretrained stem, unchanged by fine-tuning.
    let pre = model_values(&home.run_dir("p", "pre").best(), 10);
    let tuned = model_values(
        &thaw::engine::checkpoint::latest(&ft)
            .unwrap()
            .0
            .join("model.bpk"),
        5,
    );
    assert_eq!(pre["conv1.weight"], tuned["conv1.weight"]);
    assert_ne!(pre["layer4.0.conv1.weight"], tuned["layer4.0.conv1.weight"]);
}

/// An mlp has no BatchNorm whose names tell burn's layout from PyTorch's, and its hidden layer
/// is square: its own best weights used to load as PyTorch's, 4 of 6 tensors, the square one
/// transposed without a word. Its own file and its exports all load whole and unchanged.
#[test]
fn an_mlp_loads_its_own_weights_and_its_exports_whole_and_exports_keep_its_files() {
    let home = common::Home::new();
    let shape = ModelShape {
        classes: 5,
        in_channels: 3,
        image_size: 16,
    };
    let device = Device::flex();
    device.seed(3);
    let ours = Mlp::new(shape, &device);
    let run = finished_looking_run(&home, ModelKind::MLP, 16, 5);
    ours.clone().save_file(run.best()).unwrap();
    // An export never replaces the run's own files, and one that fails leaves nothing behind.
    let before = std::fs::read(run.best()).unwrap();
    let taken = home.path().join("taken.bpk");
    std::fs::create_dir(&taken).unwrap();
    let refusals = [
        (run.best(), "inside the run's own directory"),
        (home.path().join("nowhere/x.bpk"), "cannot write"),
        (taken.clone(), "cannot replace"),
    ];
    for (to, expected) in refusals {
        let out = home.run_cmd(&["export", "s/r", "--to", to.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(expected) && stderr.contains(to.to_str().unwrap()),
            "{stderr}"
        );
    }
    assert_eq!(std::fs::read(run.best()).unwrap(), before);
    let left: Vec<_> = std::fs::read_dir(home.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let mut files = vec![run.best()];
    for name in ["mlp.bpk", "mlp.safetensors"] {
        let to = home.path().join(name);
        let out = home.run_cmd(&["export", "s/r", "--to", to.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        files.push(to);
    }
    let tensors = |model: &Mlp| {
        let mut all = std::collections::BTreeMap::new();
        for_each_tensor(model, |t| {
            all.insert(t.path.to_string(), t.values());
        });
        all
    };
    for path in files {
        device.seed(4);
        let fresh = Mlp::new(shape, &device);
        let groups = layer_groups(ModelKind::MLP, &fresh);
        let file = WeightsFile::read(&path).unwrap();
        let (loaded, report) = transfer(fresh, &groups, &file, &TransferRules::default()).unwrap();
        assert_eq!(
            (report.tensors_transferred, report.tensors_total),
            (6, 6),
            "{}: {report:?}",
            path.display()
        );
        assert_eq!(tensors(&loaded), tensors(&ours), "{}", path.display());
    }
}

fn model_values(path: &Path, classes: usize) -> std::collections::BTreeMap<String, Vec<f32>> {
    let shape = ModelShape {
        classes,
        in_channels: 3,
        image_size: 32,
    };
    let model = ResNet::new(ResNetShape::MINI, shape, &Device::flex())
        .try_load_file(path)
        .unwrap();
    let mut all = std::collections::BTreeMap::new();
    for_each_tensor(&model, |t| {
        all.insert(t.path.to_string(), t.values());
    });
    all
}

/// Run `s/r` as a finished run leaves it, without its weights: its spec and `classes.json`
/// (`class0`, `class1`, ...).
fn finished_looking_run(
    home: &common::Home,
    model: ModelKind,
    image_size: usize,
    classes: usize,
) -> thaw::run::RunDir {
    let run = home.run_dir("s", "r");
    std::fs::create_dir_all(&run.root).unwrap();
    let spec = thaw::session::RunSpec {
        name: "r".into(),
        model,
        image_size,
        device: "flex".parse().unwrap(),
        ..Default::default()
    };
    std::fs::write(run.spec(), spec.to_toml()).unwrap();
    let names: Vec<String> = (0..classes).map(|i| format!("class{i}")).collect();
    std::fs::write(
        run.root.join("classes.json"),
        serde_json::to_vec(&names).unwrap(),
    )
    .unwrap();
    run
}

/// A finished-looking run of `resnet18` whose best weights are PyTorch's file, for export and
/// predict.
fn run_with_pytorch_weights(home: &common::Home, torch: &Path) -> thaw::run::RunDir {
    let run = finished_looking_run(home, ModelKind::RESNET18, 56, 10);
    let (model, _) = load(resnet18(10, 3), &torch.join("r18.pth"));
    model.save_file(run.best()).unwrap();
    run
}

#[test]
fn an_export_loads_into_torchvision_and_gives_pytorchs_logits() {
    let Some(torch) = pytorch_files() else { return };
    let home = common::Home::new();
    run_with_pytorch_weights(&home, torch.path());
    let out = home.path().join("r18-export.safetensors");
    let done = home.run_cmd(&["export", "r", "--to", out.to_str().unwrap()]);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let io = torch.path().join("io.safetensors");
    let checked = common::pytorch(
        "check_export.py",
        &[out.as_os_str(), io.as_os_str(), "10".as_ref()],
    );
    let result: serde_json::Value = serde_json::from_slice(&checked).unwrap();
    let diff = result["max_diff"].as_f64().unwrap();
    assert!(
        diff < 1e-4,
        "torchvision's logits from the export differ by {diff}"
    );

    // The .bpk export reads back into thaw with the same result.
    let bpk = home.path().join("r18-export.bpk");
    assert!(
        home.run_cmd(&["export", "s/r", "--to", bpk.to_str().unwrap()])
            .status
            .success()
    );
    let io = WeightsFile::read(&torch.path().join("io.safetensors")).unwrap();
    let (x_shape, x) = values(&io, "x");
    let (_, expected) = values(&io, "y");
    let (model, report) = load(resnet18(10, 3), &bpk);
    assert_eq!(report.tensors_transferred, report.tensors_total);
    let input = Tensor::<4>::from_data(TensorData::new(x, x_shape), &Device::flex());
    let logits = model
        .valid()
        .forward(input)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert!(max_diff(&logits, &expected) < 1e-4);

    for (args, expected) in [
        (
            vec!["export", "nope", "--to", "x.bpk"],
            "no run \"nope\": the runs are",
        ),
        (
            vec!["export", "r", "--to", "x.onnx"],
            "use a .bpk or .safetensors path",
        ),
    ] {
        let out = home.run_cmd(&args);
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(expected),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn predict_gives_pytorchs_probabilities_for_the_same_png_files() {
    let Some(torch) = pytorch_files() else { return };
    let home = common::Home::new();
    let run = run_with_pytorch_weights(&home, torch.path());
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(torch.path().join("predict.json")).unwrap()).unwrap();
    let images: Vec<String> = reference["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let best = run.best();
    let mut args = vec![
        "predict",
        "--model",
        "resnet18",
        "--weights",
        best.to_str().unwrap(),
        "--image-size",
        "56",
        "--json",
    ];
    args.extend(images.iter().map(String::as_str));
    let out = home.run_cmd(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (i, image) in images.iter().enumerate() {
        let ours = &answer[i];
        assert_eq!(ours["image"].as_str().unwrap(), image);
        let probs: Vec<f32> = ours["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_f64().unwrap() as f32)
            .collect();
        let theirs: Vec<f32> = reference["probabilities"][i]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_f64().unwrap() as f32)
            .collect();
        let diff = max_diff(&probs, &theirs);
        assert!(
            diff < 1e-4,
            "{image}: probabilities differ from PyTorch's by {diff}"
        );
        // Class names come from the run's classes.json, most likely first.
        let top = ours["top"].as_array().unwrap();
        assert!(top[0][0].as_str().unwrap().starts_with("class"));
        assert!(top[0][1].as_f64().unwrap() >= top[1][1].as_f64().unwrap());
    }
    let plain = home.run_cmd(&[
        "predict",
        "--model",
        "resnet18",
        "--weights",
        best.to_str().unwrap(),
        "--image-size",
        "56",
        &images[0],
    ]);
    assert!(String::from_utf8_lossy(&plain.stdout).starts_with(&format!("{}: class", images[0])));
    let wrong = home.run_cmd(&[
        "predict",
        "--model",
        "resnet34",
        "--weights",
        best.to_str().unwrap(),
        &images[0],
    ]);
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("does not fit a resnet34"));
}

#[test]
fn remap_and_exclude_rules_rename_and_drop_file_tensors() {
    // A checkpoint whose names carry a prefix, as a wrapper model writes them.
    let dir = tempfile::tempdir().unwrap();
    let shape = ModelShape {
        classes: 4,
        in_channels: 3,
        image_size: 32,
    };
    let source = ResNet::new(ResNetShape::MINI, shape, &Device::flex());
    let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for_each_tensor(&source, |t| {
        let bytes = t.values().iter().flat_map(|v| v.to_le_bytes()).collect();
        named.push((format!("backbone.{}", t.path), t.shape.clone(), bytes));
    });
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = named
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    let path = dir.path().join("prefixed.safetensors");
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
    let file = WeightsFile::read(&path).unwrap();

    let fresh = || ResNet::new(ResNetShape::MINI, shape, &Device::flex());
    let groups = layer_groups(ModelKind::RESNET_MINI, &fresh());
    let none = TransferRules::default();
    assert!(
        transfer(fresh(), &groups, &file, &none).is_err(),
        "no name matches without a rule"
    );

    let rules = TransferRules {
        remap: vec![(regex::Regex::new(r"^backbone\.").unwrap(), String::new())],
        exclude: vec![regex::Regex::new(r"^backbone\.fc\.").unwrap()],
        ..TransferRules::for_model(ModelKind::RESNET18)
    };
    let (model, report) = transfer(fresh(), &groups, &file, &rules).unwrap();
    assert_eq!(report.tensors_transferred, report.tensors_total - 2);
    assert_eq!(report.new, ["fc.weight", "fc.bias"]);
    assert_eq!(report.unused, ["backbone.fc.bias", "backbone.fc.weight"]);
    assert_eq!(report.groups.last().unwrap().summary(), "new");
    let mut loaded = std::collections::BTreeMap::new();
    for_each_tensor(&model, |t| {
        loaded.insert(t.path.to_string(), t.values());
    });
    for_each_tensor(&source, |t| {
        if !t.path.starts_with("fc.") {
            assert_eq!(loaded[t.path], t.values(), "{}", t.path);
        }
    });
}

/// `thaw weights inspect F | head -0`: the reader is gone before thaw prints; thaw ends as
/// cat would (SIGPIPE), without a panic on stderr. The listing is larger than a pipe holds,
/// so that a copy of the read end held for a moment by another test's child (between its
/// fork and exec) cannot let it all through.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let home = common::Home::new();
    let tensors = 8000;
    let header = (0..tensors)
        .map(|i| {
            format!(
                r#""w{i}":{{"dtype":"F32","shape":[1],"data_offsets":[{},{}]}}"#,
                4 * i,
                4 * i + 4
            )
        })
        .collect::<Vec<_>>()
        .join(",");
    let header = format!("{{{header}}}");
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend(std::iter::repeat_n(0u8, 4 * tensors));
    let file = home.path().join("w.safetensors");
    std::fs::write(&file, bytes).unwrap();
    let listed = home.run_cmd(&["weights", "inspect", file.to_str().unwrap()]);
    assert!(listed.status.success() && String::from_utf8_lossy(&listed.stdout).contains("w"));
    let mut child = home
        .thaw()
        .args(["weights", "inspect", file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{stderr}");
}
