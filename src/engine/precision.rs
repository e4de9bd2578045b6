//! The floating-point type a run trains in: `f32` (the default), `bf16` or `f16`, set on the
//! run's device before its model exists, so that parameters, activations, gradients and
//! optimizer state all use it. Freezing works the same in every precision.

use std::fmt;
use std::str::FromStr;

use burn::tensor::{Device, FloatDType};

use super::device::DeviceSpec;

/// A run's floating-point precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    F32,
    Bf16,
    F16,
}

impl FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "f32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            "f16" => Ok(Self::F16),
            other => Err(format!(
                "unknown precision {other:?}: expected f32, bf16 or f16"
            )),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
        })
    }
}

impl Precision {
    fn dtype(self) -> FloatDType {
        match self {
            Self::F32 => FloatDType::F32,
            Self::Bf16 => FloatDType::BF16,
            Self::F16 => FloatDType::F16,
        }
    }

    /// Makes `device` create its floats in this precision; an error, before anything is
    /// trained, where its backend cannot compute in it.
    pub fn apply(self, device: &mut Device, spec: DeviceSpec) -> anyhow::Result<()> {
        if self == Self::F32 {
            return Ok(());
        }
        if !device.supports_dtype(self.dtype()) {
            anyhow::bail!(
                "precision = \"{self}\" is not supported on device {spec}: use \"f32\" there"
            );
        }
        device
            .configure(self.dtype())
            .map_err(|e| anyhow::anyhow!("precision = \"{self}\" on device {spec}: {e:?}"))
    }
}
