//! `thaw weights inspect FILE` and `thaw weights transfer FILE --model M` (a dry run).

use std::path::Path;

use anyhow::Result;
use burn::prelude::*;

use crate::engine::model::{
    Classifier, ModelKind, ModelShape, ModelTask, layer_groups, with_model,
};
use crate::engine::weights::{TransferReport, TransferRules, WeightsFile, transfer};

/// Lists every tensor of a weights file with its shape and type, and totals.
pub fn inspect(path: &Path, json: bool) -> Result<()> {
    let file = WeightsFile::read(path)?;
    if json {
        let tensors: Vec<serde_json::Value> = file
            .tensors
            .iter()
            .map(|(name, t)| serde_json::json!({"name": name, "shape": t.shape, "dtype": t.dtype}))
            .collect();
        let out = serde_json::json!({
            "file": path.display().to_string(),
            "format": file.format.to_string(),
            "wrapper": file.wrapper,
            "tensors": tensors,
            "total_tensors": file.tensors.len(),
            "total_elements": file.total_elements(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let width = file.tensors.keys().map(String::len).max().unwrap_or(0);
    for (name, t) in &file.tensors {
        let shape: Vec<String> = t.shape.iter().map(usize::to_string).collect();
        println!("{name:<width$}  {:<8} [{}]", t.dtype, shape.join(", "));
    }
    let wrapper = file
        .wrapper
        .as_deref()
        .map(|w| format!(", inside {w:?}"))
        .unwrap_or_default();
    println!(
        "{} tensors, {} values ({} file{wrapper})",
        file.tensors.len(),
        file.total_elements(),
        file.format
    );
    Ok(())
}

/// Options of the transfer dry run.
pub struct DryRun<'a> {
    pub file: &'a Path,
    pub model: ModelKind,
    /// Default: the file's head, else 1000.
    pub classes: Option<usize>,
    pub in_channels: usize,
    pub image_size: usize,
    pub json: bool,
}

struct Transfer<'a>(&'a WeightsFile, ModelKind);

impl ModelTask for Transfer<'_> {
    type Output = Result<TransferReport>;
    fn run<M: Classifier>(self, model: M) -> Self::Output {
        let rules = TransferRules::for_model(self.1);
        let groups = layer_groups(self.1, &model);
        Ok(transfer(model, &groups, self.0, &rules)?.1)
    }
}

/// What `weights = FILE` would do to a model, without training anything.
pub fn dry_run(args: DryRun) -> Result<()> {
    args.model
        .check_image_size(args.image_size)
        .map_err(|why| anyhow::anyhow!("--image-size {why}"))?;
    let file = WeightsFile::read(args.file)?;
    let shape = ModelShape {
        classes: args
            .classes
            .or_else(|| super::head_classes(&file, args.model))
            .unwrap_or(1000),
        in_channels: args.in_channels,
        image_size: args.image_size,
    };
    let report = with_model(
        args.model,
        shape,
        &Device::flex(),
        Transfer(&file, args.model),
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    for line in report.lines() {
        println!("{line}");
    }
    for (path, how) in &report.adapted {
        println!("adapted   {path}: {how}");
    }
    for m in &report.mismatched {
        println!(
            "mismatch  {}: model {:?}, file {:?} (kept its initialisation)",
            m.path, m.model, m.file
        );
    }
    for path in &report.new {
        println!("new       {path} (kept its initialisation)");
    }
    for name in &report.unused {
        println!("unused    {name}");
    }
    Ok(())
}
