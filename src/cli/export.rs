//! `thaw export RUN --to PATH`: a run's weights as `.bpk` or `.safetensors` with PyTorch's
//! parameter names and layouts, so torchvision's models load a ResNet export as it is.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::prelude::*;
use burn::store::burn_pack::{Tensor as PackTensor, Writer};
use burn::tensor::{Bytes, DType};

use crate::engine::checkpoint;
use crate::engine::model::{Classifier, ModelShape, ModelTask, for_each_tensor, with_model};
use crate::engine::weights::{LAYOUT_KEY, PYTORCH_LAYOUT, pytorch_name, transpose};
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

/// The model's tensors in PyTorch's names and layouts.
fn pytorch_tensors<M: Module>(model: &M) -> Vec<Named> {
    let mut out = Vec::new();
    for_each_tensor(model, |t| {
        let mut shape = t.shape.clone();
        let mut values = t.values();
        // burn keeps Linear weights as [in, out]; PyTorch as [out, in].
        if shape.len() == 2 && t.path.ends_with(".weight") {
            values = transpose(&values, shape[0], shape[1]);
            shape.swap(0, 1);
        }
        if let Some(stem) = t.path.strip_suffix(".running_var") {
            // PyTorch's BatchNorm also carries a step counter, which strict loading expects.
            out.push(Named {
                name: format!("{stem}.num_batches_tracked"),
                shape: Vec::new(),
                dtype: DType::I64,
                bytes: 0i64.to_le_bytes().to_vec(),
            });
        }
        out.push(Named {
            name: pytorch_name(t.path),
            shape,
            dtype: DType::F32,
            bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
    });
    out
}

struct Load<'a>(&'a Path);

impl ModelTask for Load<'_> {
    type Output = Result<Vec<Named>>;
    fn run<M: Classifier>(self, model: M) -> Self::Output {
        let model = model
            .try_load_file(self.0)
            .with_context(|| format!("cannot load {}", self.0.display()))?;
        Ok(pytorch_tensors(&model))
    }
}

/// Writes the run's best (or latest) weights to `to`.
pub fn main(paths: &Paths, run: &str, to: &Path, latest: bool) -> Result<()> {
    let (_, run) = Catalog::of(paths).find(run)?;
    let spec = RunSpec::load(&run.spec())?;
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
    let tensors = with_model(spec.model, shape, &Device::flex(), Load(&source))?;
    let ext = to
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let bytes = match ext.as_deref() {
        Some("safetensors") => safetensors_bytes(&tensors)?,
        Some("bpk") => burnpack_bytes(tensors)?,
        _ => bail!(
            "cannot export to {}: use a .bpk or .safetensors path",
            to.display()
        ),
    };
    write_atomic(to, &bytes)?;
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
