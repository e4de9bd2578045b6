//! Transfer of a weights file into a model whose architecture may differ: by name (after the
//! model's own PyTorch naming and the user's remap rules), then by shape; the first
//! convolution adapted to other input channels; a report of everything.

use std::collections::{BTreeMap, BTreeSet};

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::store::burn_pack::{Tensor as PackTensor, Writer};
use burn::tensor::{DType, TensorData};
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::read::{WeightsError, WeightsFile};
use super::resample::{resample_positions, square_grid};
use crate::engine::model::{Classifier, LayerGroup, Layout, ModelKind, for_each_tensor};

/// User rules: rename file keys (`weights_remap`) and drop them (`weights_exclude`).
#[derive(Debug, Clone, Default)]
pub struct TransferRules {
    pub remap: Vec<(Regex, String)>,
    pub exclude: Vec<Regex>,
    /// The model's input convolution, adapted when only its input channels differ.
    pub input_conv: Option<String>,
    /// The model's position embeddings, resampled when only its grid of patches differs.
    pub position_embedding: Option<String>,
}

impl TransferRules {
    /// The rules `kind` needs and no user rules.
    pub fn for_model(kind: ModelKind) -> Self {
        Self {
            input_conv: kind.input_conv().map(str::to_string),
            position_embedding: kind.position_embedding().map(str::to_string),
            ..Self::default()
        }
    }
}

/// A model tensor the file had under another shape; it kept its initialisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mismatch {
    pub path: String,
    pub model: Vec<usize>,
    pub file: Vec<usize>,
}

/// How much of one layer group came from the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupTransfer {
    pub name: String,
    pub params: usize,
    pub pretrained: usize,
}

impl GroupTransfer {
    /// "100% pretrained", "new", "62% pretrained".
    pub fn summary(&self) -> String {
        match (self.pretrained, self.params) {
            (0, _) => "new".to_string(),
            (p, t) if p == t => "100% pretrained".to_string(),
            (p, t) => format!("{:.0}% pretrained", 100.0 * p as f64 / t as f64),
        }
    }
}

/// What a transfer did, tensor by tensor and group by group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferReport {
    pub source: String,
    pub format: String,
    /// Whose names the file's were read as (`torchvision`, `timm`), for a file in PyTorch's
    /// layout; none for burn's own files (thaw's runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<Layout>,
    pub tensors_transferred: usize,
    pub tensors_total: usize,
    pub params_transferred: usize,
    pub params_total: usize,
    /// Model tensors loaded from the file unchanged.
    pub transferred: Vec<String>,
    /// Model tensors loaded after adapting them (the first convolution), with how.
    pub adapted: BTreeMap<String, String>,
    /// Model tensors the file does not have: they kept their initialisation.
    pub new: Vec<String>,
    pub mismatched: Vec<Mismatch>,
    /// File tensors the model has no place for.
    pub unused: Vec<String>,
    pub groups: Vec<GroupTransfer>,
    /// Plain sentences for what a user should know (a new head, adapted channels).
    pub notes: Vec<String>,
}

impl TransferReport {
    /// A few lines for events, the dry run and the dashboard.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "transferred {}/{} tensors, {}/{} parameters from {}{}",
            self.tensors_transferred,
            self.tensors_total,
            self.params_transferred,
            self.params_total,
            self.source,
            match self.layout {
                Some(layout) => format!(" ({}'s names)", layout.name()),
                None => String::new(),
            }
        )];
        let groups: Vec<String> = self
            .groups
            .iter()
            .map(|g| format!("{}: {}", g.name, g.summary()))
            .collect();
        lines.push(groups.join(", "));
        lines.extend(self.notes.iter().cloned());
        if !self.unused.is_empty() {
            lines.push(format!(
                "{} file tensors unused: {}",
                self.unused.len(),
                preview(&self.unused)
            ));
        }
        lines
    }
}

fn preview(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(4).map(String::as_str).collect();
    match names.len() > 4 {
        true => format!("{} and {} more", shown.join(", "), names.len() - 4),
        false => shown.join(", "),
    }
}

/// A model tensor: its path, shape and whether it is a BatchNorm statistic.
struct ModelTensor {
    path: String,
    shape: Vec<usize>,
    stat: bool,
}

/// The model's tensors in visiting order.
#[derive(Default)]
struct Shapes {
    tensors: Vec<ModelTensor>,
}

impl Shapes {
    fn of<M: Module>(model: &M) -> Self {
        let mut tensors = Vec::new();
        for_each_tensor(model, |t| {
            tensors.push(ModelTensor {
                path: t.path.to_string(),
                shape: t.shape.clone(),
                stat: t.is_statistic(),
            })
        });
        Self { tensors }
    }
}

/// The grid sides of a file's and a model's position embeddings (`[1, 1 + side^2, dim]`), where
/// both are such grids of one width.
fn position_grids(file: &[usize], model: &[usize]) -> Option<(usize, usize)> {
    match (file, model) {
        ([1, a, d], [1, b, e]) if d == e => Some((square_grid(*a, 1)?, square_grid(*b, 1)?)),
        _ => None,
    }
}

/// Whether two shapes differ only in dimensions of size 1 (timm's layer scale `[C]` and
/// torchvision's `[C, 1, 1]`), so the same values fit both.
fn same_but_unit_dims(a: &[usize], b: &[usize]) -> bool {
    let big = |s: &[usize]| s.iter().copied().filter(|&d| d != 1).collect::<Vec<_>>();
    big(a) == big(b)
}

/// Transposes a row-major `[rows, cols]` matrix.
pub fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

/// timm's rule for a first convolution with other input channels: 1 channel sums the file's
/// channels; more repeat them cyclically and scale by (file channels / model channels).
fn adapt_channels(values: &[f32], file: &[usize], model_in: usize) -> Vec<f32> {
    let (out, file_in, k) = (file[0], file[1], file[2] * file[3]);
    let mut adapted = vec![0.0; out * model_in * k];
    for o in 0..out {
        for c in 0..model_in {
            for i in 0..k {
                adapted[(o * model_in + c) * k + i] = if model_in == 1 {
                    (0..file_in)
                        .map(|fc| values[(o * file_in + fc) * k + i])
                        .sum()
                } else {
                    values[(o * file_in + c % file_in) * k + i] * file_in as f32 / model_in as f32
                };
            }
        }
    }
    adapted
}

/// Loads what fits of `file` into `model`. The model is returned changed only on success; a
/// file of which nothing fits is an error that says what the names look like on both sides.
pub fn transfer<M: Classifier>(
    model: M,
    groups: &[LayerGroup],
    file: &WeightsFile,
    rules: &TransferRules,
) -> Result<(M, TransferReport), WeightsError> {
    let shapes = Shapes::of(&model);
    let pytorch = file.pytorch_layout();

    // The file's names after the user's rules; excluded names are simply not offered.
    let mut offered: BTreeMap<String, String> = BTreeMap::new();
    for key in file.tensors.keys() {
        if rules.exclude.iter().any(|r| r.is_match(key)) {
            continue;
        }
        let mut name = key.clone();
        for (pattern, replacement) in &rules.remap {
            name = pattern
                .replace_all(&name, replacement.as_str())
                .into_owned();
        }
        offered.insert(name, key.clone());
    }

    let mut report = TransferReport {
        source: file.path.display().to_string(),
        format: file.format.to_string(),
        layout: None,
        tensors_transferred: 0,
        tensors_total: shapes.tensors.len(),
        params_transferred: 0,
        params_total: shapes
            .tensors
            .iter()
            .filter(|t| !t.stat)
            .map(|t| t.shape.iter().product::<usize>())
            .sum(),
        transferred: Vec::new(),
        adapted: BTreeMap::new(),
        new: Vec::new(),
        mismatched: Vec::new(),
        unused: Vec::new(),
        groups: Vec::new(),
        notes: Vec::new(),
    };
    // A file in PyTorch's layout is read in whichever ecosystem's names more of it matches.
    report.layout = pytorch.then(|| {
        let hits = |layout: Layout| {
            let named = shapes
                .tensors
                .iter()
                .filter_map(|t| model.layout_name(layout, &t.path));
            named.filter(|name| offered.contains_key(name)).count()
        };
        // The first of the most matched: a tie goes to torchvision's.
        Layout::ALL
            .into_iter()
            .min_by_key(|layout| std::cmp::Reverse(hits(*layout)))
            .unwrap_or(Layout::Torchvision)
    });
    let mut used: BTreeSet<String> = BTreeSet::new();
    let mut loaded: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut pretrained_paths: BTreeSet<String> = BTreeSet::new();
    for t in &shapes.tensors {
        let wanted = match report.layout {
            Some(layout) => model.layout_name(layout, &t.path),
            None => Some(t.path.clone()),
        };
        let Some(key) = wanted.and_then(|name| offered.get(&name)) else {
            report.new.push(t.path.clone());
            continue;
        };
        let source = &file.tensors[key];
        let Some(values) = &source.values else {
            report.mismatched.push(Mismatch {
                path: t.path.clone(),
                model: t.shape.clone(),
                file: source.shape.clone(),
            });
            used.insert(key.clone());
            continue;
        };
        used.insert(key.clone());
        // PyTorch stores Linear weights as [out, in]; burn as [in, out].
        let linear = pytorch && t.shape.len() == 2;
        let (file_shape, values) = match linear && source.shape.len() == 2 {
            true => (
                vec![source.shape[1], source.shape[0]],
                transpose(values, source.shape[0], source.shape[1]),
            ),
            false => (source.shape.clone(), values.clone()),
        };
        if file_shape == t.shape || same_but_unit_dims(&file_shape, &t.shape) {
            loaded.push((t.path.clone(), t.shape.clone(), values));
            report.transferred.push(t.path.clone());
        } else if rules.input_conv.as_deref() == Some(t.path.as_str())
            && file_shape.len() == 4
            && t.shape.len() == 4
            && file_shape[0] == t.shape[0]
            && file_shape[2..] == t.shape[2..]
        {
            let adapted = adapt_channels(&values, &file_shape, t.shape[1]);
            let how = match t.shape[1] {
                1 => format!("summed the file's {} input channels into 1", file_shape[1]),
                n => format!(
                    "repeated the file's {} input channels to {n} and scaled by {}/{n}",
                    file_shape[1], file_shape[1]
                ),
            };
            report.notes.push(format!("{}: {how}", t.path));
            report.adapted.insert(t.path.clone(), how);
            loaded.push((t.path.clone(), t.shape.clone(), adapted));
        } else if let Some((old, new)) = (rules.position_embedding.as_deref()
            == Some(t.path.as_str()))
        .then(|| position_grids(&file_shape, &t.shape))
        .flatten()
        {
            let resampled = resample_positions(&values, 1, old, new, t.shape[2]);
            let how = format!("resampled pos_embed {old}x{old} -> {new}x{new}");
            report.notes.push(format!("{}: {how}", t.path));
            report.adapted.insert(t.path.clone(), how);
            loaded.push((t.path.clone(), t.shape.clone(), resampled));
        } else {
            // Both shapes in the file's layout, as its author knows them.
            let model = match linear && source.shape.len() == 2 {
                true => t.shape.iter().rev().copied().collect(),
                false => t.shape.clone(),
            };
            report.mismatched.push(Mismatch {
                path: t.path.clone(),
                model,
                file: source.shape.clone(),
            });
            continue;
        }
        report.tensors_transferred += 1;
        if !t.stat {
            report.params_transferred += t.shape.iter().product::<usize>();
            pretrained_paths.insert(t.path.clone());
        }
    }
    report.unused = file
        .tensors
        .keys()
        .filter(|k| !used.contains(*k))
        .cloned()
        .collect();

    if loaded.is_empty() {
        let file_names: Vec<String> = file.tensors.keys().take(3).cloned().collect();
        let model_names: Vec<String> = shapes
            .tensors
            .iter()
            .take(3)
            .map(|t| t.path.clone())
            .collect();
        return Err(WeightsError::Transfer(format!(
            "nothing in {} fits the model: the file's tensors are named like {} and the model's like {}{}; add weights_remap rules, or check the file is for this model",
            file.path.display(),
            file_names.join(", "),
            model_names.join(", "),
            match report.mismatched.len() {
                0 => String::new(),
                n => format!(" ({n} names matched but with other shapes)"),
            }
        )));
    }
    group_summary(&mut report, groups, &shapes, &pretrained_paths);
    head_notes(&mut report, groups);

    // Staged in the model's own precision (bf16 or f16 runs), so the record loads as is.
    let mut dtype = DType::F32;
    for_each_tensor(&model, |t| dtype = t.dtype);
    let tensors: Vec<PackTensor> = loaded
        .into_iter()
        .map(|(path, shape, values)| {
            let data = TensorData::new(values, shape.clone()).convert_dtype(dtype);
            PackTensor::new(path, dtype, shape, None, data.into_bytes())
        })
        .collect();
    let bytes = Writer::new(tensors)
        .into_bytes()
        .map_err(|e| WeightsError::Transfer(format!("cannot stage the transfer: {e:?}")))?;
    let record = ModuleRecord::from_bytes(bytes)
        .map_err(|e| WeightsError::Transfer(format!("cannot stage the transfer: {e:?}")))?
        .allow_partial(true);
    let model = model.try_load_record(record).map_err(|e| {
        WeightsError::Transfer(format!("cannot apply {}: {e:?}", file.path.display()))
    })?;
    Ok((model, report))
}

fn group_summary(
    report: &mut TransferReport,
    groups: &[LayerGroup],
    shapes: &Shapes,
    pretrained: &BTreeSet<String>,
) {
    for group in groups {
        let Ok(pattern) = Regex::new(&group.pattern) else {
            continue;
        };
        let done: usize = shapes
            .tensors
            .iter()
            .filter(|t| !t.stat && pattern.is_match(&t.path) && pretrained.contains(&t.path))
            .map(|t| t.shape.iter().product::<usize>())
            .sum();
        report.groups.push(GroupTransfer {
            name: group.name.clone(),
            params: group.params,
            pretrained: done,
        });
    }
}

/// Says in words when the head is new because the class count differs.
fn head_notes(report: &mut TransferReport, groups: &[LayerGroup]) {
    let Some(head) = groups.last() else { return };
    let Ok(pattern) = Regex::new(&head.pattern) else {
        return;
    };
    let bias = report
        .mismatched
        .iter()
        .find(|m| pattern.is_match(&m.path) && m.model.len() == 1 && m.file.len() == 1);
    if let Some(m) = bias {
        report.notes.insert(
            0,
            format!(
                "{} re-initialised: the file has {} classes, the model {}",
                head.name, m.file[0], m.model[0]
            ),
        );
    }
}
