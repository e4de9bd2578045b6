//! Every float tensor of a module with its dotted path, for code that needs names: group
//! sizes, weights transfer, export, tests.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::prelude::*;
use burn::tensor::DType;

/// One tensor of a module as [`for_each_tensor`] shows it.
pub struct TensorView<'a> {
    /// Field path without the root: `layer1.0.bn1.running_mean`.
    pub path: &'a str,
    pub id: ParamId,
    pub shape: Vec<usize>,
    /// The float type its device creates (the run's precision).
    pub dtype: DType,
    read: &'a dyn Fn() -> TensorData,
}

impl TensorView<'_> {
    /// Whether it is a BatchNorm running statistic rather than a trained parameter.
    pub fn is_statistic(&self) -> bool {
        self.path.ends_with("running_mean") || self.path.ends_with("running_var")
    }

    /// The values, read from the device.
    pub fn data(&self) -> TensorData {
        (self.read)()
    }

    /// The values as f32.
    pub fn values(&self) -> Vec<f32> {
        self.data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap_or_default()
    }
}

/// Calls `f` with every float tensor of `module` (parameters and BatchNorm statistics).
pub fn for_each_tensor<M: Module>(module: &M, f: impl FnMut(TensorView<'_>)) {
    module.visit(&mut Walker {
        path: Vec::new(),
        f,
    });
}

struct Walker<F> {
    path: Vec<String>,
    f: F,
}

impl<F: FnMut(TensorView<'_>)> ModuleVisitor for Walker<F> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let path = self.path.join(".");
        let read = || param.val().into_data();
        (self.f)(TensorView {
            path: &path,
            id: param.id,
            shape: param.lazy_shape().dims::<D>().to_vec(),
            dtype: param.lazy_device().settings().float_dtype.into(),
            read: &read,
        });
    }
}

/// torchvision's name of a field path: burn's BatchNorm and LayerNorm `gamma`/`beta` are
/// PyTorch's `weight`/`bias`; every other name is the same.
pub fn torchvision_name(path: &str) -> String {
    if let Some(stem) = path.strip_suffix(".gamma") {
        format!("{stem}.weight")
    } else if let Some(stem) = path.strip_suffix(".beta") {
        format!("{stem}.bias")
    } else {
        path.to_string()
    }
}
