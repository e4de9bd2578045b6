//! NVML (libnvidia-ml), loaded at run time: the GPUs this process may use and their figures.

use std::ffi::OsStr;

use nvml_wrapper::Device;
use nvml_wrapper::Nvml as Library;
use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::struct_wrappers::device::ProcessInfo;

use super::{GpuInfo, GpuInventory, GpuStats, visible};

/// The variable CUDA reads to choose and order the GPUs a process sees.
const CUDA_VISIBLE_DEVICES: &str = "CUDA_VISIBLE_DEVICES";

/// NVML, loaded at run time: without the library or a driver there are no GPUs and nothing fails.
///
/// The GPUs are those `CUDA_VISIBLE_DEVICES` showed when it was loaded, numbered as CUDA numbers
/// them. A number in that variable counts GPUs in NVML's order (PCI bus order); CUDA's default
/// order, fastest first, is the same on a machine whose GPUs are all one model, and
/// `CUDA_DEVICE_ORDER=PCI_BUS_ID` makes it the same on any machine.
#[derive(Debug)]
pub struct Nvml {
    /// None where NVML could not be loaded or started.
    library: Option<Library>,
    /// The GPUs this process may use, in CUDA's order.
    gpus: Vec<GpuInfo>,
    /// NVML's index for each GPU in `gpus`, at the same position.
    nvml_indices: Vec<u32>,
    why_none: Option<String>,
}

/// A GPU as NVML lists it, before `CUDA_VISIBLE_DEVICES` chooses among them.
#[derive(Debug, Clone, PartialEq)]
struct PhysicalGpu {
    nvml_index: u32,
    name: String,
    uuid: String,
    memory_total: u64,
}

impl Nvml {
    /// Loads libnvidia-ml (never fails: `why_none()` says why there are no GPUs).
    pub fn load() -> Self {
        Self::start(Library::init(), cuda_visible_devices().as_deref())
    }

    /// Loads it from this path (tests give a path that does not exist).
    pub fn load_from(path: &OsStr) -> Self {
        let library = Library::builder().lib_path(path).init();
        Self::start(library, cuda_visible_devices().as_deref())
    }

    /// Why no GPUs are listed, if none are: "NVML not found (no NVIDIA driver): …",
    /// "CUDA_VISIBLE_DEVICES hides every GPU: …", and so on.
    pub fn why_none(&self) -> Option<String> {
        self.why_none.clone()
    }

    /// Lists the GPUs of a started (or failed) NVML that this `CUDA_VISIBLE_DEVICES` shows.
    fn start(library: Result<Library, NvmlError>, setting: Option<&str>) -> Self {
        let library = match library {
            Ok(library) => library,
            Err(error) => return Self::without_gpus(None, not_started(&error)),
        };
        let physical = match physical_gpus(&library) {
            Ok(physical) => physical,
            Err(error) => {
                let why = format!("NVML started but could not count the GPUs: {error}");
                return Self::without_gpus(Some(library), why);
            }
        };
        let (gpus, nvml_indices) = choose(&physical, setting);
        let why_none = gpus.is_empty().then(|| why_hidden(physical.len(), setting));
        Self {
            library: Some(library),
            gpus,
            nvml_indices,
            why_none,
        }
    }

    fn without_gpus(library: Option<Library>, why: String) -> Self {
        Self {
            library,
            gpus: Vec::new(),
            nvml_indices: Vec::new(),
            why_none: Some(why),
        }
    }
}

impl GpuInventory for Nvml {
    fn gpus(&self) -> Vec<GpuInfo> {
        self.gpus.clone()
    }

    fn stats(&self) -> Vec<GpuStats> {
        let Some(library) = &self.library else {
            return Vec::new();
        };
        self.gpus
            .iter()
            .zip(&self.nvml_indices)
            .map(
                |(gpu, &nvml_index)| match library.device_by_index(nvml_index) {
                    Ok(device) => figures(gpu, &device),
                    Err(_) => GpuStats::unknown(gpu),
                },
            )
            .collect()
    }
}

/// `CUDA_VISIBLE_DEVICES` as this process was started with it.
fn cuda_visible_devices() -> Option<String> {
    // A value that is not UTF-8 keeps its readable entries; CUDA would stop at the unreadable one,
    // and so does `visible`, since the replacement character names no GPU.
    std::env::var_os(CUDA_VISIBLE_DEVICES).map(|value| value.to_string_lossy().into_owned())
}

/// Why NVML did not start, in the user's words.
fn not_started(error: &NvmlError) -> String {
    match error {
        NvmlError::LibloadingError(cause) => format!("NVML not found (no NVIDIA driver): {cause}"),
        NvmlError::LibraryNotFound => "NVML not found (no NVIDIA driver)".to_string(),
        NvmlError::DriverNotLoaded => "NVML found, but the NVIDIA driver is not loaded".to_string(),
        NvmlError::NoPermission => {
            "NVML found, but this user has no permission to talk to the NVIDIA driver".to_string()
        }
        other => format!("NVML found, but it could not start: {other}"),
    }
}

/// Every GPU NVML lists, in NVML's order. A GPU that cannot be read keeps its place (CUDA
/// numbers count it) with what could be read.
fn physical_gpus(library: &Library) -> Result<Vec<PhysicalGpu>, NvmlError> {
    let count = library.device_count()?;
    Ok((0..count)
        .map(|nvml_index| match library.device_by_index(nvml_index) {
            Ok(device) => PhysicalGpu {
                nvml_index,
                name: device.name().unwrap_or_else(|_| "unknown GPU".to_string()),
                // An empty UUID is matched by no `CUDA_VISIBLE_DEVICES` entry.
                uuid: device.uuid().unwrap_or_default(),
                memory_total: device.memory_info().map_or(0, |memory| memory.total),
            },
            Err(_) => PhysicalGpu {
                nvml_index,
                name: "unknown GPU".to_string(),
                uuid: String::new(),
                memory_total: 0,
            },
        })
        .collect())
}

/// The GPUs `setting` shows, numbered from 0 in CUDA's order, and NVML's index for each.
fn choose(physical: &[PhysicalGpu], setting: Option<&str>) -> (Vec<GpuInfo>, Vec<u32>) {
    let listed: Vec<(usize, String)> = physical
        .iter()
        .enumerate()
        .map(|(position, gpu)| (position, gpu.uuid.clone()))
        .collect();
    visible(setting, &listed)
        .into_iter()
        .filter_map(|position| physical.get(position))
        .enumerate()
        .map(|(index, gpu)| {
            let info = GpuInfo {
                index,
                name: gpu.name.clone(),
                uuid: gpu.uuid.clone(),
                memory_total: gpu.memory_total,
            };
            (info, gpu.nvml_index)
        })
        .unzip()
}

/// Why `choose` found no GPU among `count` that NVML lists.
fn why_hidden(count: usize, setting: Option<&str>) -> String {
    // Unset, the variable hides nothing: no GPUs then means NVML lists none.
    let Some(setting) = setting.filter(|_| count > 0) else {
        return "NVML found the driver, but it lists no GPUs".to_string();
    };
    let first = setting.split(',').next().unwrap_or_default().trim();
    if first.is_empty() {
        return format!("{CUDA_VISIBLE_DEVICES} is empty, which hides every GPU");
    }
    format!(
        "{CUDA_VISIBLE_DEVICES} hides every GPU: its first entry {first:?} names none of the {count} \
         (expected a number from 0 to {last} or the start of one GPU's UUID, GPU-…; \
         MIG instances are not supported)",
        last = count - 1
    )
}

/// `gpu`'s figures now; a figure this GPU or driver does not report is None.
fn figures(gpu: &GpuInfo, device: &Device<'_>) -> GpuStats {
    let memory = device.memory_info().ok();
    GpuStats {
        index: gpu.index,
        name: gpu.name.clone(),
        utilization: device.utilization_rates().ok().map(|rates| rates.gpu),
        memory_used: memory.as_ref().map(|memory| memory.used),
        memory_total: memory.map_or(gpu.memory_total, |memory| memory.total),
        temperature: device.temperature(TemperatureSensor::Gpu).ok(),
        // NVML reports milliwatts.
        power: device
            .power_usage()
            .ok()
            .map(|milliwatts| f64::from(milliwatts) / 1000.0),
        processes: device
            .running_compute_processes()
            .map(|processes| held_memory(&processes))
            .unwrap_or_default(),
    }
}

/// (pid, bytes) for each process whose GPU memory NVML could measure.
fn held_memory(processes: &[ProcessInfo]) -> Vec<(u32, u64)> {
    processes
        .iter()
        .filter_map(|process| match process.used_gpu_memory {
            UsedGpuMemory::Used(bytes) => Some((process.pid, bytes)),
            UsedGpuMemory::Unavailable => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::path::Path;

    use nvml_wrapper::enums::device::UsedGpuMemory;
    use nvml_wrapper::error::NvmlError;
    use nvml_wrapper::struct_wrappers::device::ProcessInfo;

    use super::{GpuInventory, Nvml, PhysicalGpu, choose, held_memory, why_hidden};

    /// Two GPUs as NVML might list them.
    fn physical() -> Vec<PhysicalGpu> {
        [
            "GPU-8e0c1a2b-0000-1111-2222-333344445555",
            "GPU-77aa0000-1234-5678-9abc-def012345678",
        ]
        .iter()
        .enumerate()
        .map(|(nvml_index, uuid)| PhysicalGpu {
            nvml_index: nvml_index as u32,
            name: format!("NVIDIA Test {nvml_index}"),
            uuid: uuid.to_string(),
            memory_total: 80 << 30,
        })
        .collect()
    }

    #[test]
    fn a_missing_library_means_no_gpus() {
        let nvml = Nvml::load_from(OsStr::new("/nonexistent/libnvidia-ml.so.1"));
        assert!(nvml.gpus().is_empty());
        assert!(nvml.stats().is_empty());
        let why = nvml.why_none().expect("a reason for having no GPUs");
        assert!(why.contains("NVML not found"), "{why}");
        assert!(why.contains("/nonexistent/libnvidia-ml.so.1"), "{why}");
    }

    #[test]
    fn load_never_panics_and_explains_an_empty_list() {
        let nvml = Nvml::load();
        let (gpus, stats) = (nvml.gpus(), nvml.stats());
        assert_eq!(gpus.len(), stats.len());
        assert_eq!(gpus.is_empty(), nvml.why_none().is_some());
        assert!(
            gpus.iter()
                .enumerate()
                .all(|(position, gpu)| gpu.index == position)
        );
        // Without the NVIDIA kernel driver there can be no GPUs, whatever libraries are installed.
        if !Path::new("/proc/driver/nvidia").exists() {
            assert!(gpus.is_empty());
        }
    }

    #[test]
    fn driver_errors_say_what_is_missing() {
        let why = |error| Nvml::start(Err(error), None).why_none().unwrap_or_default();
        assert_eq!(
            why(NvmlError::LibraryNotFound),
            "NVML not found (no NVIDIA driver)"
        );
        assert!(why(NvmlError::DriverNotLoaded).contains("driver is not loaded"));
        assert!(why(NvmlError::NoPermission).contains("no permission"));
        assert!(why(NvmlError::Unknown).contains("could not start"));
    }

    #[test]
    fn unset_lists_every_gpu_in_nvml_order() {
        let (gpus, nvml_indices) = choose(&physical(), None);
        assert_eq!(nvml_indices, vec![0, 1]);
        assert_eq!(gpus[1].index, 1);
        assert_eq!(gpus[1].name, "NVIDIA Test 1");
        assert_eq!(gpus[1].memory_total, 80 << 30);
    }

    #[test]
    fn visible_gpus_are_numbered_from_zero_in_cuda_order() {
        let (gpus, nvml_indices) = choose(&physical(), Some("GPU-77aa,0"));
        assert_eq!(nvml_indices, vec![1, 0]);
        let numbered: Vec<(usize, &str)> = gpus
            .iter()
            .map(|gpu| (gpu.index, gpu.uuid.as_str()))
            .collect();
        assert_eq!(
            numbered,
            vec![
                (0, "GPU-77aa0000-1234-5678-9abc-def012345678"),
                (1, "GPU-8e0c1a2b-0000-1111-2222-333344445555"),
            ]
        );
    }

    #[test]
    fn an_unreadable_uuid_is_never_chosen_by_uuid() {
        let mut physical = physical();
        physical[0].uuid.clear();
        assert_eq!(choose(&physical, Some("GPU-")).1, Vec::<u32>::new());
        assert_eq!(choose(&physical, Some("0")).1, vec![0]);
    }

    #[test]
    fn hidden_gpus_are_explained() {
        assert!(choose(&physical(), Some("")).0.is_empty());
        assert_eq!(
            why_hidden(2, Some("")),
            "CUDA_VISIBLE_DEVICES is empty, which hides every GPU"
        );
        assert!(choose(&physical(), Some("5,0")).0.is_empty());
        let why = why_hidden(2, Some(" 5 ,0"));
        assert!(
            why.starts_with("CUDA_VISIBLE_DEVICES hides every GPU"),
            "{why}"
        );
        assert!(why.contains("\"5\""), "{why}");
        assert!(why.contains("from 0 to 1"), "{why}");
        assert!(why_hidden(0, None).contains("lists no GPUs"));
        assert!(why_hidden(0, Some("0")).contains("lists no GPUs"));
    }

    #[test]
    fn only_measured_process_memory_is_kept() {
        let process = |pid, used_gpu_memory| ProcessInfo {
            pid,
            used_gpu_memory,
            gpu_instance_id: None,
            compute_instance_id: None,
        };
        let processes = [
            process(100, UsedGpuMemory::Used(3 << 30)),
            process(200, UsedGpuMemory::Unavailable),
            process(300, UsedGpuMemory::Used(0)),
        ];
        assert_eq!(held_memory(&processes), vec![(100, 3 << 30), (300, 0)]);
    }
}
