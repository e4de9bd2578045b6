//! The GPUs this process may use and their figures now: from NVML on a real machine, from a
//! fixed list in tests.

mod nvml;
mod visible;

pub use nvml::Nvml;
pub use visible::visible;

use serde::{Deserialize, Serialize};

/// One GPU as CUDA numbers it for this process (after `CUDA_VISIBLE_DEVICES`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuInfo {
    /// Its CUDA index in this process: 0 for the first visible GPU.
    pub index: usize,
    /// The product name, such as "NVIDIA H100 80GB HBM3".
    pub name: String,
    /// Its UUID, such as "GPU-8e0c1a2b-…".
    pub uuid: String,
    /// Its memory in bytes.
    pub memory_total: u64,
}

/// A GPU's figures now (for the dashboard header and `status --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuStats {
    /// Its CUDA index in this process, as in [`GpuInfo::index`].
    pub index: usize,
    /// The product name.
    pub name: String,
    /// How busy it is, in percent.
    pub utilization: Option<u32>,
    /// Memory in use, in bytes.
    pub memory_used: Option<u64>,
    /// Its memory in bytes.
    pub memory_total: u64,
    /// Its temperature in degrees Celsius.
    pub temperature: Option<u32>,
    /// Its power draw in watts.
    pub power: Option<f64>,
    /// GPU memory held by each process on this GPU: (pid, bytes).
    pub processes: Vec<(u32, u64)>,
}

/// Where the daemon learns which GPUs there are; a test implementation stands in for NVML.
pub trait GpuInventory: Send {
    /// The GPUs this process may use, in CUDA's order.
    fn gpus(&self) -> Vec<GpuInfo>;
    /// Their figures now; empty where there are none.
    fn stats(&self) -> Vec<GpuStats>;
}

/// A fixed list of GPUs, for tests and for machines where they are declared by hand.
#[derive(Debug, Clone, PartialEq)]
pub struct FixedGpus(pub Vec<GpuInfo>);

impl GpuInventory for FixedGpus {
    fn gpus(&self) -> Vec<GpuInfo> {
        self.0.clone()
    }

    fn stats(&self) -> Vec<GpuStats> {
        self.0.iter().map(GpuStats::unknown).collect()
    }
}

impl GpuStats {
    /// This GPU with its size known and every figure unknown.
    fn unknown(gpu: &GpuInfo) -> Self {
        Self {
            index: gpu.index,
            name: gpu.name.clone(),
            utilization: None,
            memory_used: None,
            memory_total: gpu.memory_total,
            temperature: None,
            power: None,
            processes: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{FixedGpus, GpuInfo, GpuInventory, GpuStats};

    fn two() -> Vec<GpuInfo> {
        (0..2)
            .map(|index| GpuInfo {
                index,
                name: format!("Test GPU {index}"),
                uuid: format!("GPU-{index:08x}-0000-0000-0000-000000000000"),
                memory_total: (index as u64 + 1) << 30,
            })
            .collect()
    }

    #[test]
    fn fixed_gpus_lists_what_it_was_given() {
        assert_eq!(FixedGpus(two()).gpus(), two());
        assert_eq!(FixedGpus(Vec::new()).gpus(), Vec::new());
    }

    #[test]
    fn fixed_gpus_stats_know_only_the_size() {
        let stats = FixedGpus(two()).stats();
        assert_eq!(
            stats[1],
            GpuStats {
                index: 1,
                name: "Test GPU 1".to_string(),
                utilization: None,
                memory_used: None,
                memory_total: 2 << 30,
                temperature: None,
                power: None,
                processes: Vec::new(),
            }
        );
        assert_eq!(stats.len(), 2);
        assert!(FixedGpus(Vec::new()).stats().is_empty());
    }

    #[test]
    fn inventories_can_be_boxed_and_sent() {
        let inventory: Box<dyn GpuInventory> = Box::new(FixedGpus(two()));
        let gpus = std::thread::spawn(move || inventory.gpus())
            .join()
            .expect("the thread listing GPUs panicked");
        assert_eq!(gpus.len(), 2);
    }

    #[test]
    fn stats_round_trip_through_json() {
        let mut stats = FixedGpus(two()).stats();
        stats[0].processes = vec![(4242, 1 << 20)];
        stats[0].power = Some(312.5);
        let json = serde_json::to_string(&stats).expect("GpuStats serialize");
        let back: Vec<GpuStats> = serde_json::from_str(&json).expect("GpuStats deserialize");
        assert_eq!(back, stats);
    }
}
