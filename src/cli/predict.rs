//! `thaw predict`: class probabilities of images, with validation's preprocessing.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use serde::Serialize;

use super::head_classes;
use crate::engine::data::prepare_image;
use crate::engine::model::{
    Classifier, ModelKind, ModelShape, ModelTask, layer_groups, with_model,
};
use crate::engine::weights::{TransferRules, WeightsFile, transfer};
use crate::run::class_names_near;

/// Options of `thaw predict`.
pub struct PredictArgs<'a> {
    pub model: ModelKind,
    pub weights: &'a Path,
    pub classes: Option<usize>,
    pub image_size: usize,
    pub in_channels: usize,
    pub top: usize,
    pub json: bool,
    pub images: &'a [PathBuf],
}

/// One image's answer, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct Prediction {
    pub image: String,
    pub top: Vec<(String, f32)>,
    pub probabilities: Vec<f32>,
}

struct Probabilities<'a> {
    file: &'a WeightsFile,
    kind: ModelKind,
    inputs: Vec<f32>,
    shape: [usize; 4],
}

impl ModelTask for Probabilities<'_> {
    type Output = Result<Vec<f32>>;
    fn run<M: Classifier>(self, model: M) -> Self::Output {
        let rules = TransferRules::for_model(self.kind);
        let groups = layer_groups(self.kind, &model);
        let (model, report) = transfer(model, &groups, self.file, &rules)?;
        if report.tensors_transferred != report.tensors_total {
            bail!(
                "{} does not fit a {} with these settings: {}; check --model, --classes and --in-channels",
                self.file.path.display(),
                self.kind,
                report.lines().join("; ")
            );
        }
        let device = Device::flex();
        let images = Tensor::<4>::from_data(TensorData::new(self.inputs, self.shape), &device);
        let probabilities = softmax(model.valid().forward(images), 1);
        probabilities
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))
    }
}

/// Prints each image's most likely classes.
pub fn main(args: PredictArgs) -> Result<()> {
    if args.images.is_empty() {
        bail!("no images: give one or more PNG or JPEG files");
    }
    args.model
        .check_image_size(args.image_size)
        .map_err(|why| anyhow::anyhow!("--image-size {why}"))?;
    let file = WeightsFile::read(args.weights)?;
    let names = class_names_near(args.weights);
    let classes = args
        .classes
        .or(names.as_ref().map(Vec::len))
        .or_else(|| head_classes(&file, args.model))
        .context("cannot tell how many classes the weights have: pass --classes N")?;
    let per_image = args.in_channels * args.image_size * args.image_size;
    let mut inputs = Vec::with_capacity(per_image * args.images.len());
    for image in args.images {
        let values = prepare_image(image, args.image_size, args.in_channels)
            .map_err(|e| anyhow::anyhow!("image {}: {e}", image.display()))?;
        inputs.extend(values);
    }
    let shape = [
        args.images.len(),
        args.in_channels,
        args.image_size,
        args.image_size,
    ];
    let model_shape = ModelShape {
        classes,
        in_channels: args.in_channels,
        image_size: args.image_size,
    };
    let task = Probabilities {
        file: &file,
        kind: args.model,
        inputs,
        shape,
    };
    let all = with_model(args.model, model_shape, &Device::flex(), task)?;
    let label = |i: usize| match &names {
        Some(names) if names.len() == classes => names[i].clone(),
        _ => i.to_string(),
    };
    let predictions: Vec<Prediction> = args
        .images
        .iter()
        .zip(all.chunks(classes))
        .map(|(image, probs)| {
            let mut order: Vec<usize> = (0..classes).collect();
            order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
            Prediction {
                image: image.display().to_string(),
                top: order
                    .iter()
                    .take(args.top)
                    .map(|&i| (label(i), probs[i]))
                    .collect(),
                probabilities: probs.to_vec(),
            }
        })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&predictions)?);
    } else {
        for p in &predictions {
            let top: Vec<String> = p
                .top
                .iter()
                .map(|(c, prob)| format!("{c} {:.1}%", prob * 100.0))
                .collect();
            println!("{}: {}", p.image, top.join(", "));
        }
    }
    Ok(())
}
