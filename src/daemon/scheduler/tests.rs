//! The scheduler against a fixed GPU inventory, with stand-in worker processes.

use super::*;
use crate::daemon::registry::Session;
use crate::paths::Paths;
use crate::session::{SessionSpec, store};

/// The scheduler with local workers only.
fn schedule(registry: &mut Registry, capacity: &Capacity, spawn: &mut Spawn) -> Result<()> {
    let mut submit = |run: &mut Run| -> Result<()> { panic!("{} is not a Slurm run", run.name) };
    super::schedule(
        registry,
        capacity,
        &mut Launch {
            spawn,
            submit: &mut submit,
        },
    )
}

fn registry(dir: &std::path::Path) -> Registry {
    session(
        dir,
        r#"
name = "s"
[defaults]
model = "mlp"
device = "flex"
[[runs]]
name = "pre"
[[runs]]
name = "ft"
weights = "run:pre/best"
"#,
    )
}

fn session(dir: &std::path::Path, text: &str) -> Registry {
    let spec = SessionSpec::parse(text, &dir.join("s.toml")).unwrap();
    let paths = Paths {
        data: dir.join("data"),
        config: dir.join("config"),
        runtime: dir.join("run"),
    };
    let runs = store::prepare(&paths, &spec)
        .unwrap()
        .runs
        .into_iter()
        .map(|d| Run::open("s", d).unwrap())
        .collect();
    let mut registry = Registry::default();
    registry.sessions = vec![Session {
        name: "s".into(),
        runs,
    }];
    registry
}

#[test]
fn a_run_waits_for_the_weights_it_starts_from_and_fails_without_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = registry(dir.path());
    // No CPU slot: nothing is started, the ready run says what it waits for.
    schedule(&mut registry, &cpu_only(0), &mut no_spawn).unwrap();
    let runs = &registry.sessions[0].runs;
    assert_eq!(runs[0].state.status, RunStatus::Queued);
    assert_eq!(
        runs[0].queued_reason.as_deref(),
        Some("waiting for a CPU slot (0 of 0 in use)")
    );
    assert_eq!(runs[1].state.status, RunStatus::Waiting);
    assert!(
        runs[1]
            .queued_reason
            .as_deref()
            .unwrap()
            .contains("run pre")
    );
    assert_eq!(runs[1].dir.read_state().unwrap().status, RunStatus::Waiting);

    registry.sessions[0].runs[0]
        .set_status(RunStatus::Failed, None)
        .unwrap();
    schedule(&mut registry, &cpu_only(0), &mut no_spawn).unwrap();
    let ft = &registry.sessions[0].runs[1];
    assert_eq!(ft.state.status, RunStatus::Failed);
    assert!(
        ft.state
            .message
            .as_deref()
            .unwrap()
            .contains("pre ended failed")
    );
}

const NO_GPUS: &[GpuInfo] = &[];

fn cpu_only(cpu_slots: usize) -> Capacity<'static> {
    Capacity {
        cpu_slots,
        cores: 2,
        gpus: NO_GPUS,
        runs_per_gpu: 1,
    }
}

fn no_spawn(_: &RunDir, _: usize, _: Option<DeviceSpec>) -> Result<Child> {
    anyhow::bail!("no worker in this test")
}

fn gpus(n: usize) -> Vec<GpuInfo> {
    (0..n)
        .map(|index| GpuInfo {
            index,
            name: "Test GPU".into(),
            uuid: format!("GPU-{index}"),
            memory_total: 80 << 30,
        })
        .collect()
}

/// Three runs that leave the GPU to the daemon.
fn gpu_runs(dir: &std::path::Path, devices: [DeviceSpec; 3]) -> Registry {
    let mut registry = session(
        dir,
        r#"
name = "g"
[defaults]
model = "mlp"
device = "flex"
[[runs]]
name = "a"
[[runs]]
name = "b"
[[runs]]
name = "c"
"#,
    );
    // Session files may name GPUs only where LibTorch is built in; the scheduler does not care.
    for (run, device) in registry.sessions[0].runs.iter_mut().zip(devices) {
        run.device = device;
    }
    registry
}

/// Starts `sleep` in place of a worker and records the device it was given.
struct StandIns(Vec<(String, Option<DeviceSpec>)>, Vec<usize>);

impl StandIns {
    fn new() -> StandIns {
        StandIns(Vec::new(), Vec::new())
    }

    fn spawn(&mut self, dir: &RunDir, threads: usize, device: Option<DeviceSpec>) -> Result<Child> {
        let name = dir.root.file_name().unwrap().to_string_lossy().to_string();
        self.0.push((name, device));
        self.1.push(threads);
        Ok(std::process::Command::new("sleep").arg("60").spawn()?)
    }
}

fn status(registry: &Registry) -> Vec<(String, RunStatus, Option<usize>)> {
    registry
        .runs()
        .map(|r| (r.name.clone(), r.state.status, r.gpu))
        .collect()
}

/// Kills a run's stand-in and reaps it as the daemon does: the run fails.
fn kill(run: &mut Run) {
    let mut worker = run.execution.take_worker().expect("a worker");
    worker.signal(libc::SIGKILL);
    let exit = loop {
        if let Some(exit) = worker.poll() {
            break exit;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    super::super::workers::settle(run, worker.pid(), exit).unwrap();
}

fn stop_all(registry: &mut Registry) {
    for run in registry.runs_mut() {
        if let Some(worker) = run.execution.take_worker() {
            worker.signal(libc::SIGKILL);
        }
    }
}

#[test]
fn two_gpus_three_runs_one_queued_until_a_failed_run_frees_its_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = gpu_runs(dir.path(), [DeviceSpec::Gpu; 3]);
    let gpus = gpus(2);
    let capacity = Capacity {
        gpus: &gpus,
        ..cpu_only(2)
    };
    let mut standins = StandIns::new();
    schedule(&mut registry, &capacity, &mut |d, t, g| {
        standins.spawn(d, t, g)
    })
    .unwrap();
    assert_eq!(
        status(&registry),
        [
            ("a".into(), RunStatus::Running, Some(0)),
            ("b".into(), RunStatus::Running, Some(1)),
            ("c".into(), RunStatus::Queued, None),
        ]
    );
    let c = &registry.sessions[0].runs[2];
    assert_eq!(
        c.queued_reason.as_deref(),
        Some("waiting for a free GPU (all 2 have 1 run(s))")
    );
    assert_eq!(registry.sessions[0].runs[1].state.device, "tch:cuda:1");

    // a dies (a CUDA out-of-memory, say): it is failed and c gets its GPU.
    kill(&mut registry.sessions[0].runs[0]);
    schedule(&mut registry, &capacity, &mut |d, t, g| {
        standins.spawn(d, t, g)
    })
    .unwrap();
    assert_eq!(registry.sessions[0].runs[0].state.status, RunStatus::Failed);
    assert_eq!(
        status(&registry)[2],
        ("c".into(), RunStatus::Running, Some(0))
    );
    assert_eq!(
        standins.0,
        [
            ("a".into(), Some(DeviceSpec::TchCuda(0))),
            ("b".into(), Some(DeviceSpec::TchCuda(1))),
            ("c".into(), Some(DeviceSpec::TchCuda(0))),
        ]
    );
    stop_all(&mut registry);
}

#[test]
fn gpu_runs_get_a_share_of_the_cores_for_their_data_and_cpu_runs_count_them() {
    let dir = tempfile::tempdir().unwrap();
    let gpus = gpus(2);
    let capacity = Capacity {
        gpus: &gpus,
        cores: 16,
        ..cpu_only(2)
    };
    // Three GPU runs for two GPUs: the cores are shared by the three ready ones.
    let mut registry = gpu_runs(dir.path(), [DeviceSpec::Gpu; 3]);
    let mut standins = StandIns::new();
    schedule(&mut registry, &capacity, &mut |d, t, g| {
        standins.spawn(d, t, g)
    })
    .unwrap();
    assert_eq!(standins.1, [5, 5]);
    // a ends; c starts beside b alone: half the cores.
    kill(&mut registry.sessions[0].runs[0]);
    schedule(&mut registry, &capacity, &mut |d, t, g| {
        standins.spawn(d, t, g)
    })
    .unwrap();
    assert_eq!(standins.1, [5, 5, 8]);
    stop_all(&mut registry);

    // A CPU run beside two GPU runs: three runs share the 16 cores.
    let dir = tempfile::tempdir().unwrap();
    let mut registry = gpu_runs(
        dir.path(),
        [DeviceSpec::Flex, DeviceSpec::Gpu, DeviceSpec::Gpu],
    );
    let mut standins = StandIns::new();
    schedule(&mut registry, &capacity, &mut |d, t, g| {
        standins.spawn(d, t, g)
    })
    .unwrap();
    assert_eq!(standins.0.len(), 3);
    assert_eq!(standins.1, [5, 5, 5]);
    stop_all(&mut registry);
}

#[test]
fn a_given_gpu_waits_for_that_gpu_and_runs_per_gpu_shares_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = gpu_runs(
        dir.path(),
        [
            DeviceSpec::TchCuda(1),
            DeviceSpec::TchCuda(1),
            DeviceSpec::Gpu,
        ],
    );
    let gpus = gpus(2);
    let capacity = Capacity {
        gpus: &gpus,
        ..cpu_only(2)
    };
    let mut standins = StandIns::new();
    schedule(&mut registry, &capacity, &mut |d, t, g| {
        standins.spawn(d, t, g)
    })
    .unwrap();
    assert_eq!(
        status(&registry),
        [
            ("a".into(), RunStatus::Running, Some(1)),
            ("b".into(), RunStatus::Queued, None),
            ("c".into(), RunStatus::Running, Some(0)),
        ]
    );
    let b = &registry.sessions[0].runs[1];
    assert_eq!(
        b.queued_reason.as_deref(),
        Some("waiting for GPU 1 (used by s/a)")
    );
    stop_all(&mut registry);

    let dir = tempfile::tempdir().unwrap();
    let mut registry = gpu_runs(dir.path(), [DeviceSpec::Gpu; 3]);
    let shared = Capacity {
        gpus: &gpus,
        runs_per_gpu: 2,
        ..cpu_only(2)
    };
    schedule(&mut registry, &shared, &mut |d, t, g| {
        standins.spawn(d, t, g)
    })
    .unwrap();
    let placed: Vec<Option<usize>> = registry.runs().map(|r| r.gpu).collect();
    assert_eq!(placed, [Some(0), Some(1), Some(0)]);
    stop_all(&mut registry);
}

#[test]
fn gpus_that_are_not_there_fail_the_run_with_what_there_is() {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = gpu_runs(
        dir.path(),
        [DeviceSpec::TchCuda(5), DeviceSpec::Gpu, DeviceSpec::Auto],
    );
    let two = gpus(2);
    let capacity = Capacity {
        gpus: &two,
        ..cpu_only(0)
    };
    schedule(&mut registry, &capacity, &mut no_spawn).unwrap();
    let a = &registry.sessions[0].runs[0];
    assert_eq!(a.state.status, RunStatus::Failed);
    assert_eq!(
        a.state.message.as_deref(),
        Some("there is no GPU 5: the daemon sees 2 (tch:cuda:0 to tch:cuda:1)")
    );

    let dir = tempfile::tempdir().unwrap();
    let mut registry = gpu_runs(
        dir.path(),
        [DeviceSpec::Gpu, DeviceSpec::Auto, DeviceSpec::Flex],
    );
    schedule(&mut registry, &cpu_only(0), &mut no_spawn).unwrap();
    let runs = &registry.sessions[0].runs;
    assert_eq!(runs[0].state.status, RunStatus::Failed);
    assert!(
        runs[0]
            .state
            .message
            .as_deref()
            .unwrap()
            .contains("no CUDA GPU is visible")
    );
    // auto without GPUs is a CPU run: it waits for a CPU slot like flex.
    assert_eq!(runs[1].state.status, RunStatus::Queued);
    assert_eq!(placement(DeviceSpec::Auto, &[]), Placement::Cpu);
    assert_eq!(
        placement(DeviceSpec::Auto, &two),
        match cfg!(feature = "tch") {
            true => Placement::Cuda(None),
            false => Placement::Cpu,
        }
    );
}

#[test]
fn slurm_runs_are_submitted_when_ready_and_take_no_local_slot() {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = session(
        dir.path(),
        r#"
name = "s"
[defaults]
model = "mlp"
device = "flex"
[[runs]]
name = "pre"
executor = { kind = "slurm", partition = "low" }
[[runs]]
name = "ft"
executor = { kind = "slurm" }
weights = "run:pre/best"
[[runs]]
name = "here"
"#,
    );
    let mut submitted = Vec::new();
    let mut standins = StandIns::new();
    let mut spawn = |d: &RunDir, t, g| standins.spawn(d, t, g);
    let mut submit = |run: &mut Run| -> Result<()> {
        submitted.push(run.name.clone());
        Ok(())
    };
    super::schedule(
        &mut registry,
        &cpu_only(1),
        &mut Launch {
            spawn: &mut spawn,
            submit: &mut submit,
        },
    )
    .unwrap();
    // `ft` waits for `pre`'s best weights before it is submitted; the local run has the one
    // CPU slot to itself.
    assert_eq!(submitted, ["pre"]);
    let runs = &registry.sessions[0].runs;
    assert_eq!(runs[1].state.status, RunStatus::Waiting);
    assert_eq!(runs[2].state.status, RunStatus::Running);
    kill(&mut registry.sessions[0].runs[2]);
}

/// How a worker ended is what it recorded: an adopted worker's exit status is not known, so a
/// run it finished stays finished; a child that exited with an error after writing `finished`
/// failed; one that recorded nothing failed saying how it ended.
#[test]
fn an_ended_worker_s_record_stands_unless_its_exit_says_otherwise() {
    use crate::daemon::workers::{Exit, settle};
    use crate::run::RunState;
    let dir = tempfile::tempdir().unwrap();
    let mut registry = registry(dir.path());
    let run = &mut registry.sessions[0].runs[0];
    let finished = RunState::before_training(RunStatus::Finished, None);
    run.dir.write_state(&finished).unwrap();
    settle(run, 7, Exit::Unknown).unwrap();
    assert_eq!(run.dir.read_state().unwrap().status, RunStatus::Finished);
    settle(run, 7, Exit::Code(0)).unwrap();
    assert_eq!(run.dir.read_state().unwrap().status, RunStatus::Finished);
    let failed_saying = |run: &Run, why: &str| {
        let state = run.dir.read_state().unwrap();
        assert_eq!(state.status, RunStatus::Failed);
        let message = state.message.unwrap();
        assert!(message.starts_with(why), "{message}");
    };
    settle(run, 7, Exit::Code(3)).unwrap();
    failed_saying(run, "the worker (pid 7) exited with status 3");

    let running = RunState::before_training(RunStatus::Running, None);
    run.dir.write_state(&running).unwrap();
    settle(run, 7, Exit::Unknown).unwrap();
    failed_saying(run, "the worker (pid 7) ended without recording why");
}

/// A run a `thaw train` has claimed (launched through the daemon, then trained by hand) is
/// left to it: no second worker is started, and the daemon watches it as the `thaw train`'s.
#[test]
fn a_run_a_thaw_train_claimed_is_not_started() {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = registry(dir.path());
    let claim = crate::run::lock::claim_for_train(&registry.sessions[0].runs[0].dir).unwrap();
    schedule(&mut registry, &cpu_only(2), &mut no_spawn).unwrap();
    let pre = &registry.sessions[0].runs[0];
    assert!(pre.external && !pre.is_live());
    assert_eq!(pre.state.status, RunStatus::Queued);
    // Read again (a daemon started later), it is the `thaw train`'s from the start.
    assert!(Run::open("s", pre.dir.clone()).unwrap().external);
    drop(claim);
    assert!(!Run::open("s", pre.dir.clone()).unwrap().external);
}
