//! Device strings (`flex`, `tch:cpu`, `tch:cuda:N`, `gpu`, `vulkan:N`, `auto`) and the burn
//! devices they name.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

/// A device as a user names it in a session file or on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// burn-flex, the pure-Rust CPU backend (always compiled in).
    Flex,
    /// LibTorch on the CPU (feature `tch`).
    TchCpu,
    /// LibTorch on CUDA GPU N (feature `tch`).
    TchCuda(usize),
    /// A Vulkan GPU through wgpu (feature `vulkan`).
    Vulkan(usize),
    /// Any free CUDA GPU, chosen by the daemon (`tch:cuda:0` outside it).
    Gpu,
    /// A GPU backend that is compiled in and finds a GPU, else flex.
    Auto,
}

/// Why a device string cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    #[error("unknown device {0:?}: expected one of flex, tch:cpu, tch:cuda:N, gpu, vulkan:N, auto")]
    Unknown(String),
    #[error(
        "device {device} needs thaw built with the `{feature}` feature (cargo build --features {feature})"
    )]
    NotCompiled {
        device: String,
        feature: &'static str,
    },
    #[error("device {device}: {reason}")]
    Unavailable { device: String, reason: String },
}

impl FromStr for DeviceSpec {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || DeviceError::Unknown(s.to_string());
        let index = |n: &str| n.parse::<usize>().map_err(|_| unknown());
        match s.trim() {
            "flex" | "cpu" => Ok(Self::Flex),
            "auto" => Ok(Self::Auto),
            "gpu" => Ok(Self::Gpu),
            "tch:cpu" => Ok(Self::TchCpu),
            other => {
                if let Some(n) = other.strip_prefix("tch:cuda:") {
                    Ok(Self::TchCuda(index(n)?))
                } else if other == "tch:cuda" {
                    Ok(Self::TchCuda(0))
                } else if let Some(n) = other.strip_prefix("vulkan:") {
                    Ok(Self::Vulkan(index(n)?))
                } else if other == "vulkan" {
                    Ok(Self::Vulkan(0))
                } else {
                    Err(unknown())
                }
            }
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flex => write!(f, "flex"),
            Self::TchCpu => write!(f, "tch:cpu"),
            Self::TchCuda(n) => write!(f, "tch:cuda:{n}"),
            Self::Vulkan(n) => write!(f, "vulkan:{n}"),
            Self::Gpu => write!(f, "gpu"),
            Self::Auto => write!(f, "auto"),
        }
    }
}

impl DeviceSpec {
    /// The feature a device needs, if it is not always compiled in.
    fn feature(self) -> Option<&'static str> {
        match self {
            Self::TchCpu | Self::TchCuda(_) | Self::Gpu => Some("tch"),
            Self::Vulkan(_) => Some("vulkan"),
            Self::Flex | Self::Auto => None,
        }
    }

    fn compiled_in(self) -> bool {
        match self {
            Self::TchCpu | Self::TchCuda(_) | Self::Gpu => cfg!(feature = "tch"),
            Self::Vulkan(_) => cfg!(feature = "vulkan"),
            Self::Flex | Self::Auto => true,
        }
    }

    /// Checks that this build can run the device, without touching any GPU.
    pub fn check_compiled(self) -> Result<(), DeviceError> {
        match self.feature() {
            Some(feature) if !self.compiled_in() => Err(DeviceError::NotCompiled {
                device: self.to_string(),
                feature,
            }),
            _ => Ok(()),
        }
    }

    /// The concrete device `auto` (and `gpu`) stands for in a process of its own, on this build
    /// and machine; others are themselves. The daemon places `gpu` and `auto` runs itself.
    pub fn resolve(self) -> Self {
        match self {
            Self::Auto if cuda_available() => Self::TchCuda(0),
            Self::Auto => Self::Flex,
            Self::Gpu => Self::TchCuda(0),
            other => other,
        }
    }

    /// Whether the device is a CUDA GPU (a given one or any).
    pub fn is_cuda(self) -> bool {
        matches!(self, Self::TchCuda(_) | Self::Gpu)
    }

    /// Whether the device is a CPU (whose threads thaw budgets).
    pub fn is_cpu(self) -> bool {
        matches!(self, Self::Flex | Self::TchCpu)
    }

    /// The burn device, after checking the feature and, for GPUs, that one is present.
    pub fn to_device(self) -> Result<Device, DeviceError> {
        self.check_compiled()?;
        match self.resolve() {
            Self::Flex => Ok(Device::flex()),
            #[cfg(feature = "tch")]
            #[allow(deprecated)]
            Self::TchCpu => Ok(Device::libtorch()),
            #[cfg(feature = "tch")]
            #[allow(deprecated)]
            Self::TchCuda(n) => {
                let count = cuda_device_count();
                if n < count {
                    Ok(Device::libtorch_cuda(n))
                } else {
                    Err(DeviceError::Unavailable {
                        device: self.to_string(),
                        reason: cuda_missing_reason(count),
                    })
                }
            }
            #[cfg(feature = "vulkan")]
            Self::Vulkan(n) => Ok(Device::vulkan(burn::tensor::DeviceKind::DiscreteGpu(n))),
            other => Err(DeviceError::NotCompiled {
                device: other.to_string(),
                feature: other.feature().unwrap_or("flex"),
            }),
        }
    }
}

/// Sets the number of threads the CPU backends use in this process.
pub fn set_cpu_threads(threads: usize) {
    let threads = threads.max(1);
    // rayon's global pool can be built once per process; a second call keeps the first.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global();
    #[cfg(feature = "tch")]
    tch::set_num_threads(threads as i32);
}

#[cfg(feature = "tch")]
fn cuda_device_count() -> usize {
    usize::try_from(tch::Cuda::device_count()).unwrap_or(0)
}

#[cfg(feature = "tch")]
fn cuda_available() -> bool {
    cuda_device_count() > 0
}

#[cfg(not(feature = "tch"))]
fn cuda_available() -> bool {
    false
}

#[cfg(feature = "tch")]
fn cuda_missing_reason(count: usize) -> String {
    if count > 0 {
        return format!(
            "only {count} CUDA device(s) visible (CUDA_VISIBLE_DEVICES and the driver decide which)"
        );
    }
    if !tch::utils::has_cuda() {
        "this libtorch was built without CUDA (install a CUDA build of PyTorch 2.9.0 and rebuild)"
            .to_string()
    } else {
        "no CUDA GPU is visible: check the NVIDIA driver (nvidia-smi) and CUDA_VISIBLE_DEVICES"
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_form() {
        assert_eq!("flex".parse(), Ok(DeviceSpec::Flex));
        assert_eq!("tch:cpu".parse(), Ok(DeviceSpec::TchCpu));
        assert_eq!("tch:cuda:1".parse(), Ok(DeviceSpec::TchCuda(1)));
        assert_eq!("vulkan:0".parse(), Ok(DeviceSpec::Vulkan(0)));
        assert_eq!("auto".parse(), Ok(DeviceSpec::Auto));
        assert_eq!("gpu".parse(), Ok(DeviceSpec::Gpu));
        for s in ["flex", "tch:cpu", "tch:cuda:3", "gpu", "vulkan:2", "auto"] {
            assert_eq!(
                s.parse::<DeviceSpec>().map(|d| d.to_string()),
                Ok(s.to_string())
            );
        }
    }

    #[test]
    fn unknown_strings_list_what_is_accepted() {
        for bad in ["gpu0", "tch:cuda:x", "vulkan:-1", ""] {
            let err = bad.parse::<DeviceSpec>().unwrap_err().to_string();
            assert!(
                err.contains("flex, tch:cpu, tch:cuda:N, gpu, vulkan:N, auto"),
                "{err}"
            );
        }
    }

    #[test]
    fn flex_and_auto_always_work() {
        assert!(DeviceSpec::Flex.to_device().is_ok());
        assert!(DeviceSpec::Auto.to_device().is_ok());
    }

    #[cfg(not(feature = "tch"))]
    #[test]
    fn tch_devices_name_the_missing_feature() {
        for d in [DeviceSpec::TchCpu, DeviceSpec::TchCuda(0), DeviceSpec::Gpu] {
            let err = d.to_device().unwrap_err().to_string();
            assert!(err.contains("--features tch"), "{err}");
        }
        assert_eq!(DeviceSpec::Auto.resolve(), DeviceSpec::Flex);
    }

    #[cfg(not(feature = "vulkan"))]
    #[test]
    fn vulkan_names_the_missing_feature() {
        let err = DeviceSpec::Vulkan(0).to_device().unwrap_err().to_string();
        assert!(err.contains("--features vulkan"), "{err}");
    }

    #[cfg(feature = "tch")]
    #[test]
    fn cuda_without_a_gpu_says_what_is_missing() {
        if cuda_available() {
            return;
        }
        let err = DeviceSpec::TchCuda(0).to_device().unwrap_err().to_string();
        assert!(err.contains("CUDA"), "{err}");
        assert_eq!(DeviceSpec::Auto.resolve(), DeviceSpec::Flex);
    }
}
