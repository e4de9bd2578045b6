//! The rules both schedulers follow, the daemon's (`daemon::scheduler`) and `thaw train`'s:
//! when a run that starts from another run's best weights may start, how many CPU threads a
//! worker gets, and where a run's device puts it.

use crate::engine::device::DeviceSpec;
use crate::gpu::GpuInfo;
use crate::run::{RunDir, RunStatus};

/// What a pending run needs before it can start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dependency {
    Ready,
    /// It waits, for this reason.
    Waiting(String),
    /// It cannot start, for this reason.
    Failed(String),
}

/// Who carries on a run that was interrupted, while the runs waiting for it wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumer {
    /// A daemon: `thaw resume` (or Slurm's requeue) carries it on.
    Daemon,
    /// Nobody: a `thaw train` ends once its runs have.
    Nobody,
}

/// Whether a run that starts from run `on`'s best weights (`run:ON/best`) can start, given
/// how `on` stands: ready once it has finished, or stopped with its best weights saved.
pub fn dependency(on: &str, source: &RunDir, status: RunStatus, resumer: Resumer) -> Dependency {
    let has_best = source.best().is_file();
    match status {
        RunStatus::Finished => Dependency::Ready,
        RunStatus::Stopped if has_best => Dependency::Ready,
        RunStatus::Interrupted if resumer == Resumer::Daemon => Dependency::Waiting(format!(
            "waiting for run {on}, which was interrupted: resume it (`thaw resume --all`)"
        )),
        status if status.has_ended() => Dependency::Failed(format!(
            "it starts from run {on}'s best weights, and {on} ended {} without them",
            status.word()
        )),
        _ => Dependency::Waiting(format!(
            "waiting for run {on} to finish: it starts from its best weights"
        )),
    }
}

/// Each worker's CPU threads when `together` runs share `cores`: at least one.
pub fn thread_share(cores: usize, together: usize) -> usize {
    (cores / together.max(1)).max(1)
}

/// Where a run trains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    Cpu,
    /// A CUDA GPU: that one, or any.
    Cuda(Option<usize>),
    /// Another accelerator, one run at a time (`vulkan:N`).
    Device(String),
}

/// Where a run with this device trains, given the GPUs there are.
pub fn placement(device: DeviceSpec, gpus: &[GpuInfo]) -> Placement {
    match device {
        DeviceSpec::Flex | DeviceSpec::TchCpu => Placement::Cpu,
        DeviceSpec::Auto if cfg!(feature = "tch") && !gpus.is_empty() => Placement::Cuda(None),
        DeviceSpec::Auto => Placement::Cpu,
        DeviceSpec::Gpu => Placement::Cuda(None),
        DeviceSpec::TchCuda(n) => Placement::Cuda(Some(n)),
        DeviceSpec::Vulkan(_) => Placement::Device(device.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_waits_for_its_source_s_best_weights_and_fails_without_them() {
        let dir = tempfile::tempdir().unwrap();
        let source = RunDir::new(dir.path());
        let ready = |status, resumer| dependency("pre", &source, status, resumer);
        use RunStatus::*;
        assert_eq!(ready(Finished, Resumer::Nobody), Dependency::Ready);
        for status in [Queued, Waiting, Running, Paused, Checkpointing] {
            assert!(matches!(
                ready(status, Resumer::Nobody),
                Dependency::Waiting(_)
            ));
        }
        // Stopped before its first validation: there are no best weights to start from.
        let Dependency::Failed(why) = ready(Stopped, Resumer::Daemon) else {
            panic!("a stopped run without best weights is no source");
        };
        assert!(why.contains("ended stopped without them"), "{why}");
        assert!(matches!(
            ready(Failed, Resumer::Daemon),
            Dependency::Failed(_)
        ));
        // A daemon resumes an interrupted run; a `thaw train` does not.
        assert!(matches!(
            ready(Interrupted, Resumer::Daemon),
            Dependency::Waiting(why) if why.contains("thaw resume")
        ));
        assert!(matches!(
            ready(Interrupted, Resumer::Nobody),
            Dependency::Failed(_)
        ));
        std::fs::write(source.best(), b"weights").unwrap();
        assert_eq!(ready(Stopped, Resumer::Nobody), Dependency::Ready);
    }

    #[test]
    fn the_cores_are_shared_and_every_worker_has_a_thread() {
        assert_eq!(thread_share(8, 3), 2);
        assert_eq!(thread_share(2, 5), 1);
        assert_eq!(thread_share(4, 0), 4);
    }
}
