//! `thaw export RUN --to PATH`: a run's weights as `.bpk` or `.safetensors` with PyTorch's
//! layouts and torchvision's (or timm's) parameter names, so those libraries load an export as
//! it is.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use burn::store::burn_pack::{Tensor as PackTensor, Writer};
use burn::tensor::{Bytes, DType};

use crate::engine::checkpoint;
use crate::engine::model::{
    Classifier, Layout, ModelShape, ModelTask, for_each_tensor, with_model,
};
use crate::engine::weights::{Format, LAYOUT_KEY, PYTORCH_LAYOUT, format_of, transpose};
use crate::paths::Paths;
use crate::run::{Catalog, write_atomic};
use crate::session::RunSpec;

/// One named tensor in PyTorch's naming and layout.
struct Named {
    name: String,
    shape: Vec<usize>,
    dtype: DType,
    bytes: Vec<u8>,
}

/// The model's tensors in PyTorch's layouts with `layout`'s names; the paths that layout has
/// no name for (none, or every one where it lacks the family) are an error.
fn pytorch_tensors<M: Classifier>(model: &M, layout: Layout) -> Result<Vec<Named>> {
    let mut out = Vec::new();
    let mut unnamed = Vec::new();
    for_each_tensor(model, |t| {
        let Some(name) = model.layout_name(layout, t.path) else {
            unnamed.push(t.path.to_string());
            return;
        };
        let mut shape = t.shape.clone();
        let mut values = t.values();
        // burn keeps Linear weights as [in, out]; PyTorch as [out, in].
        if shape.len() == 2 && t.path.ends_with(".weight") {
            values = transpose(&values, shape[0], shape[1]);
            shape.swap(0, 1);
        }
        let shape = model.layout_shape(layout, t.path, shape);
        if let Some(stem) = name.strip_suffix(".running_var") {
            // PyTorch's BatchNorm also carries a step counter, which strict loading expects.
            out.push(Named {
                name: format!("{stem}.num_batches_tracked"),
                shape: Vec::new(),
                dtype: DType::I64,
                bytes: 0i64.to_le_bytes().to_vec(),
            });
        }
        out.push(Named {
            name,
            shape,
            dtype: DType::F32,
            bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
    });
    match unnamed.first() {
        None => Ok(out),
        Some(_) if out.is_empty() => bail!(
            "{} has no names for this model: export with --names torchvision",
            layout.name()
        ),
        Some(path) => bail!(
            "{} has no name for {path} ({} tensors unnamed): export with --names torchvision",
            layout.name(),
            unnamed.len()
        ),
    }
}

/// The format of an export to `to`: `.safetensors` or `.bpk`, as the weights reader names them.
fn export_format(to: &Path) -> Result<Format> {
    match format_of(to) {
        Ok(format @ (Format::Safetensors | Format::Burnpack)) => Ok(format),
        _ => bail!(
            "cannot export to {}: use a .bpk or .safetensors path",
            to.display()
        ),
    }
}

/// Writes `model`'s weights to `to` (`.safetensors` or `.bpk`) in PyTorch's layouts with
/// `names`' parameter names.
pub fn write_weights<M: Classifier>(model: &M, names: Layout, to: &Path) -> Result<()> {
    let format = export_format(to)?;
    let tensors = pytorch_tensors(model, names)?;
    let bytes = match format {
        Format::Burnpack => burnpack_bytes(tensors)?,
        _ => safetensors_bytes(&tensors)?,
    };
    write_atomic(to, &bytes)?;
    Ok(())
}

struct Export<'a> {
    from: &'a Path,
    names: Layout,
    to: &'a Path,
}

impl ModelTask for Export<'_> {
    type Output = Result<()>;
    fn run<M: Classifier>(self, model: M) -> Self::Output {
        let model = model
            .try_load_file(self.from)
            .with_context(|| format!("cannot load {}", self.from.display()))?;
        write_weights(&model, self.names, self.to)
    }
}

/// Writes the run's best (or latest) weights to `to`, in `names`' names.
pub fn main(paths: &Paths, run: &str, to: &Path, latest: bool, names: Layout) -> Result<()> {
    let (_, run) = Catalog::of(paths).find(run)?;
    let spec = RunSpec::load(&run.spec())?;
    export_format(to)?;
    let folder = to
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let (Ok(folder), Ok(root)) = (folder.canonicalize(), run.root.canonicalize())
        && folder.starts_with(&root)
    {
        // An export over best.bpk would turn the run's own weights into PyTorch's layout.
        bail!(
            "cannot export to {}: it is inside the run's own directory {}, whose files thaw reads; export somewhere else",
            to.display(),
            run.root.display()
        );
    }
    let source: PathBuf = if latest {
        checkpoint::latest(&run)
            .map(|(dir, _)| crate::run::checkpoints::CheckpointDir::new(dir).model())
            .with_context(|| format!("run {} has no checkpoint yet", run.root.display()))?
    } else {
        let best = run.best();
        if !best.is_file() {
            bail!(
                "run {} has no best.bpk yet (it has not validated): try --latest",
                run.root.display()
            );
        }
        best
    };
    let classes: Vec<String> = run
        .read_classes()
        .with_context(|| format!("run {} has no classes.json", run.root.display()))?;
    let shape = ModelShape {
        classes: classes.len(),
        in_channels: spec.in_channels,
        image_size: spec.image_size,
    };
    let export = Export {
        from: &source,
        names,
        to,
    };
    with_model(spec.model, shape, &Device::flex(), export)?;
    println!(
        "{} ({} weights of {}) -> {}",
        source.display(),
        spec.model,
        run.root.display(),
        to.display()
    );
    Ok(())
}

fn safetensors_bytes(tensors: &[Named]) -> Result<Vec<u8>> {
    use safetensors::{Dtype, tensor::TensorView};
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|t| {
            let dtype = if t.dtype == DType::I64 {
                Dtype::I64
            } else {
                Dtype::F32
            };
            Ok((
                t.name.clone(),
                TensorView::new(dtype, t.shape.clone(), &t.bytes)?,
            ))
        })
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    Ok(safetensors::serialize(views, None)?)
}

fn burnpack_bytes(tensors: Vec<Named>) -> Result<Vec<u8>> {
    let packed: Vec<PackTensor> = tensors
        .into_iter()
        .map(|t| {
            PackTensor::new(
                t.name,
                t.dtype,
                t.shape,
                None,
                Bytes::from_bytes_vec(t.bytes),
            )
        })
        .collect();
    let bytes = Writer::new(packed)
        .with_metadata(LAYOUT_KEY, PYTORCH_LAYOUT)
        .into_bytes()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(bytes.to_vec())
}
