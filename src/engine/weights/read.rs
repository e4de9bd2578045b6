//! Reading weights files: burnpack `.bpk`, `.safetensors`, PyTorch `.pt`/`.pth` state dicts
//! (with their usual wrappers). PyTorch files are parsed, never unpickled by Python: no code
//! in them runs.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use burn::tensor::{DType, TensorData};

/// A weights file that could not be read, with what was expected.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("weights file {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("weights file {path}: unknown extension: expected .bpk, .safetensors, .pt or .pth")]
    UnknownFormat { path: PathBuf },
    #[error("weights file {path} holds no tensors: expected a state dict of named tensors")]
    Empty { path: PathBuf },
    #[error("{0}")]
    Transfer(String),
}

/// The file formats thaw reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Burnpack,
    Safetensors,
    Pytorch,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Burnpack => "burnpack",
            Self::Safetensors => "safetensors",
            Self::Pytorch => "pytorch",
        })
    }
}

/// One tensor of a file: its type, shape and, for floating-point tensors, its values as f32.
#[derive(Debug, Clone, PartialEq)]
pub struct FileTensor {
    pub dtype: String,
    pub shape: Vec<usize>,
    pub values: Option<Vec<f32>>,
}

impl FileTensor {
    pub fn num_elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A weights file read into memory.
#[derive(Debug, Clone)]
pub struct WeightsFile {
    pub path: PathBuf,
    pub format: Format,
    /// The wrapper keys stripped from every name (`state_dict.`, `model.` ...), if any.
    pub wrapper: Option<String>,
    pub tensors: BTreeMap<String, FileTensor>,
    /// The layout a burnpack file says it has (`layout` in its metadata: `pytorch` in
    /// `thaw export`'s files), if it says.
    pub layout_mark: Option<String>,
}

/// The metadata key, and its value, of a burnpack file in PyTorch's names and layouts.
pub const LAYOUT_KEY: &str = "layout";
pub const PYTORCH_LAYOUT: &str = "pytorch";

impl WeightsFile {
    /// Reads every tensor of the file at `path`.
    pub fn read(path: &Path) -> Result<Self, WeightsError> {
        let format = format_of(path)?;
        let unreadable = |reason: String| WeightsError::Unreadable {
            path: path.to_path_buf(),
            reason,
        };
        if path.is_dir() {
            return Err(unreadable("is a directory, not a file".into()));
        }
        if !path.is_file() {
            return Err(unreadable("no such file".into()));
        }
        let (raw, layout_mark) = match format {
            Format::Pytorch => (read_pytorch(path).map_err(unreadable)?, None),
            Format::Safetensors => (read_safetensors(path).map_err(unreadable)?, None),
            Format::Burnpack => read_burnpack(path).map_err(unreadable)?,
        };
        if raw.is_empty() {
            return Err(WeightsError::Empty {
                path: path.to_path_buf(),
            });
        }
        let (wrapper, tensors) = strip_wrapper(raw);
        Ok(Self {
            path: path.to_path_buf(),
            format,
            wrapper,
            tensors,
            layout_mark,
        })
    }

    /// Whether names and layouts follow PyTorch (BatchNorm `weight`/`bias`, Linear `[out, in]`)
    /// rather than burn (`gamma`/`beta`, `[in, out]`).
    pub fn pytorch_layout(&self) -> bool {
        let any = |suffix: &str| self.tensors.keys().any(|k| k.ends_with(suffix));
        match (self.format, self.layout_mark.as_deref()) {
            (Format::Pytorch, _) => true,
            (_, Some(mark)) => mark == PYTORCH_LAYOUT,
            // burn's own files (thaw's checkpoints and best weights) carry no mark: burn's
            // layout, unless PyTorch's BatchNorm names say otherwise (an export of an older
            // thaw). A model without BatchNorm (mlp) has no names to tell by, and its
            // square Linear weights would load transposed without a word.
            (Format::Burnpack, None) => any(".running_var") && !any(".gamma"),
            // burn's norms hold `gamma` beside `beta`; a PyTorch file may name a lone
            // parameter `gamma` (timm's layer scale), never such a pair.
            (Format::Safetensors, None) => !self.tensors.keys().any(|k| {
                k.strip_suffix(".gamma")
                    .is_some_and(|stem| self.tensors.contains_key(&format!("{stem}.beta")))
            }),
        }
    }

    /// Total elements of all tensors.
    pub fn total_elements(&self) -> usize {
        self.tensors.values().map(FileTensor::num_elements).sum()
    }
}

/// The format a weights file's extension names.
pub fn format_of(path: &Path) -> Result<Format, WeightsError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("bpk") => Ok(Format::Burnpack),
        Some("safetensors") => Ok(Format::Safetensors),
        Some("pt" | "pth" | "bin" | "ckpt") => Ok(Format::Pytorch),
        _ => Err(WeightsError::UnknownFormat {
            path: path.to_path_buf(),
        }),
    }
}

/// Wrapper prefixes of common checkpoints, longest first (Lightning's `state_dict.model.`).
const WRAPPERS: &[&str] = &[
    "state_dict.model.",
    "model_state_dict.",
    "state_dict.",
    "model.",
    "module.",
];

/// Strips a wrapper prefix shared by every tensor name.
fn strip_wrapper(
    raw: BTreeMap<String, FileTensor>,
) -> (Option<String>, BTreeMap<String, FileTensor>) {
    for wrapper in WRAPPERS {
        if raw.keys().all(|k| k.starts_with(wrapper)) {
            let stripped = raw
                .into_iter()
                .map(|(k, v)| (k[wrapper.len()..].to_string(), v))
                .collect();
            return (Some(wrapper.trim_end_matches('.').to_string()), stripped);
        }
    }
    (None, raw)
}

/// Converts raw little-endian bytes to a tensor entry; float types become f32 values.
fn entry(
    bytes: Vec<u8>,
    shape: Vec<usize>,
    dtype: DType,
    label: String,
) -> Result<FileTensor, String> {
    let elements: usize = shape.iter().product();
    let values = match dtype {
        DType::F64 | DType::F32 | DType::F16 | DType::BF16 => {
            if bytes.len() != elements * dtype.size() {
                return Err(format!(
                    "tensor {label}: {} bytes for shape {shape:?} of {label_dtype:?} (file truncated or damaged)",
                    bytes.len(),
                    label_dtype = dtype
                ));
            }
            let data = TensorData::from_bytes_vec(bytes, shape.clone(), dtype).convert::<f32>();
            Some(
                data.try_into_vec::<f32>()
                    .map_err(|e| format!("tensor {label}: {e:?}"))?,
            )
        }
        _ => None,
    };
    Ok(FileTensor {
        dtype: format!("{dtype:?}").to_lowercase(),
        shape,
        values,
    })
}

/// Python types a state dict may hold besides plain values; any other global is refused.
const PICKLE_TYPES: &[&str] = &[
    "torch.Tensor",
    "torch.TypedStorage",
    "torch.UntypedStorage",
    "torch.Size",
];

/// Names of the Python globals in a pickle that a state dict has no business holding.
fn unexpected_globals(value: &burn::store::pytorch_reader::PickleValue, found: &mut Vec<String>) {
    use burn::store::pytorch_reader::PickleValue as V;
    match value {
        V::Unsupported(name) if !PICKLE_TYPES.contains(&name.as_str()) && !found.contains(name) => {
            found.push(name.clone());
        }
        V::List(items) => items.iter().for_each(|v| unexpected_globals(v, found)),
        V::Dict(map) => map.values().for_each(|v| unexpected_globals(v, found)),
        _ => {}
    }
}

fn read_pytorch(path: &Path) -> Result<BTreeMap<String, FileTensor>, String> {
    use burn::store::pytorch_reader::{DType as P, PytorchReader};
    // The reader only parses the pickle; still, a file naming functions or classes a state
    // dict does not contain is not what it claims to be.
    if let Ok(data) = PytorchReader::read_pickle_data(path, None) {
        let mut globals = Vec::new();
        unexpected_globals(&data, &mut globals);
        if !globals.is_empty() {
            return Err(format!(
                "refused: the pickle names Python objects a state dict does not hold ({}); thaw reads only tensors, numbers, strings and containers and never runs code from a file: save with torch.save(model.state_dict())",
                globals.join(", ")
            ));
        }
    }
    let reader = PytorchReader::new(path).map_err(|e| {
        format!("not a PyTorch state dict ({e}): expected a file written by torch.save(model.state_dict())")
    })?;
    let mut out = BTreeMap::new();
    for (name, tensor) in reader.into_tensors() {
        let dtype = match tensor.dtype() {
            P::F64 => DType::F64,
            P::F32 => DType::F32,
            P::F16 => DType::F16,
            P::BF16 => DType::BF16,
            P::I64 => DType::I64,
            P::I32 => DType::I32,
            P::I16 => DType::I16,
            P::I8 => DType::I8,
            P::U64 => DType::U64,
            P::U32 => DType::U32,
            P::U16 => DType::U16,
            P::U8 | P::Bool => DType::U8,
        };
        let shape = tensor.shape().to_vec();
        let bytes = tensor
            .read()
            .map_err(|e| format!("tensor {name}: {e} (file truncated?)"))?;
        out.insert(name.clone(), entry(bytes, shape, dtype, name)?);
    }
    Ok(out)
}

fn read_safetensors(path: &Path) -> Result<BTreeMap<String, FileTensor>, String> {
    use safetensors::{Dtype as S, SafeTensors};
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| format!("not a safetensors file ({e}): expected a header and tensor data as safetensors writes them"))?;
    let mut out = BTreeMap::new();
    for (name, view) in file.tensors() {
        let dtype = match view.dtype() {
            S::F64 => DType::F64,
            S::F32 => DType::F32,
            S::F16 => DType::F16,
            S::BF16 => DType::BF16,
            S::I64 => DType::I64,
            S::I32 => DType::I32,
            S::I16 => DType::I16,
            S::I8 => DType::I8,
            S::U64 => DType::U64,
            S::U32 => DType::U32,
            S::U16 => DType::U16,
            _ => DType::U8,
        };
        let shape = view.shape().to_vec();
        out.insert(
            name.clone(),
            entry(view.data().to_vec(), shape, dtype, name)?,
        );
    }
    Ok(out)
}

fn read_burnpack(path: &Path) -> Result<(BTreeMap<String, FileTensor>, Option<String>), String> {
    let reader = burn::store::burn_pack::Reader::from_file(path).map_err(|e| {
        let why = format!("{e:?}");
        let why = match why.contains("failed to fill whole buffer") {
            true => "it is empty or cut short".to_string(),
            false => why,
        };
        format!("not a burnpack file ({why}): expected a .bpk written by burn or thaw")
    })?;
    let mark = reader.metadata().get(LAYOUT_KEY).cloned();
    let mut out = BTreeMap::new();
    for tensor in reader.into_tensors().map_err(|e| format!("{e:?}"))? {
        let shape = tensor.shape.to_vec();
        let dtype = tensor.dtype;
        let name = tensor.name.clone();
        let bytes = tensor
            .to_bytes()
            .map_err(|e| format!("tensor {name}: {e:?}"))?
            .to_vec();
        out.insert(name.clone(), entry(bytes, shape, dtype, name)?);
    }
    Ok((out, mark))
}
