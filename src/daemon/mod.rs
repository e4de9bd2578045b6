//! The daemon: a broker and a cache between run directories and clients. It starts workers,
//! writes their `desired.json`, tails what they write into a bounded in-memory history, and
//! serves clients over a Unix socket. Training never depends on it: workers run in their own
//! sessions, and a restarted daemon adopts the ones still alive.

pub mod config;
pub mod handlers;
pub mod registry;
pub mod scheduler;
pub mod server;
pub mod slurm;
pub mod tail;
pub mod up;
pub mod workers;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, watch};

use crate::engine::model::{LayerGroup, ModelShape};
use crate::engine::weights::{GroupTransfer, TransferReport};
use crate::gpu::{GpuInfo, GpuInventory, GpuStats};
use crate::paths::Paths;
use crate::protocol::Update;
use crate::run::{Catalog, RunStatus};
use config::Config;
use registry::Execution;
use registry::{Registry, Run};
use workers::Worker;

/// Updates a slow subscriber may fall behind by before it gets a fresh snapshot instead.
const UPDATE_BACKLOG: usize = 4096;
/// How often GPU figures are sampled.
const GPU_EVERY: Duration = Duration::from_secs(2);
/// How often the sessions directory is looked at for what a `thaw train` wrote.
const DISCOVER_EVERY: Duration = Duration::from_secs(2);

/// Everything the daemon knows.
pub struct Daemon {
    pub paths: Paths,
    pub config: Config,
    pub cores: usize,
    pub registry: Registry,
    /// Live changes, to every subscriber.
    pub updates: broadcast::Sender<Arc<Update>>,
    /// `thaw down` was asked: start nothing more.
    pub shutting_down: bool,
    /// The GPUs runs may use, found when the daemon started.
    pub gpus: Vec<GpuInfo>,
    /// Why there are none, when there are none.
    pub no_gpus: Option<String>,
    /// Where GPU figures come from.
    pub inventory: Box<dyn GpuInventory>,
    /// The GPUs' figures as last sampled, and when.
    pub gpu_stats: Vec<GpuStats>,
    gpu_sampled: Option<Instant>,
    /// When the sessions directory was last looked at for a `thaw train`'s runs.
    discovered: Option<Instant>,
    /// Asks Slurm about the jobs of Slurm runs.
    squeue: slurm::Watcher,
}

/// The daemon as its tasks share it, and the switch that ends it.
pub struct Shared {
    daemon: Mutex<Daemon>,
    pub stop: watch::Sender<bool>,
}

impl Shared {
    pub fn new(daemon: Daemon) -> Arc<Self> {
        Arc::new(Self {
            daemon: Mutex::new(daemon),
            stop: watch::channel(false).0,
        })
    }

    /// The daemon, for one request or one tick; never held across an await.
    pub fn lock(&self) -> MutexGuard<'_, Daemon> {
        self.daemon.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Daemon {
    /// Loads the sessions on disk, adopts the workers still alive, marks the runs whose worker
    /// is gone interrupted, and reads every run's files.
    pub fn start(
        paths: Paths,
        config: Config,
        cores: usize,
        inventory: Box<dyn GpuInventory>,
    ) -> Self {
        let registry = Registry::load(&Catalog::of(&paths));
        // What `thaw remove` could not delete (a daemon killed mid-way, say) goes now.
        let removed = paths.data.join("removed");
        if removed.exists()
            && let Err(e) = std::fs::remove_dir_all(&removed)
        {
            tracing::info!("cannot delete {}: {e}", removed.display());
        }
        let gpus = inventory.gpus();
        let squeue = slurm::Watcher::start(config.slurm_poll);
        let mut daemon = Self {
            paths,
            config,
            cores,
            registry,
            updates: broadcast::channel(UPDATE_BACKLOG).0,
            shutting_down: false,
            gpus,
            no_gpus: None,
            inventory,
            gpu_stats: Vec::new(),
            gpu_sampled: None,
            discovered: Some(Instant::now()),
            squeue,
        };
        for run in daemon.registry.runs_mut() {
            adopt(run);
            run.tail.poll(false);
        }
        if daemon.config.auto_resume {
            for run in daemon.registry.runs_mut() {
                if run.state.status == RunStatus::Interrupted
                    && !run.is_live()
                    && !run.external
                    && let Err(e) = scheduler::requeue(run, false)
                {
                    tracing::info!("{}: cannot resume: {e:#}", run.full_name());
                }
            }
        }
        daemon
    }

    /// Takes in the sessions and runs a `thaw train` has written since the last look (see
    /// [`Registry::discover`]): their workers adopted, their files read, clients told.
    pub fn discover(&mut self) {
        self.discovered = Some(Instant::now());
        let added = self.registry.discover(&Catalog::of(&self.paths));
        for (si, ri) in added {
            let run = &mut self.registry.sessions[si].runs[ri];
            adopt(run);
            run.tail.poll(false);
            tracing::info!("{}: found (written by a `thaw train`)", run.full_name());
            let snapshot = run.snapshot();
            run.announced = Some(snapshot.info.clone());
            self.announce(Update::History {
                run: Box::new(snapshot),
            });
        }
    }

    /// Reaps ended workers, starts what can start, reads what workers wrote and tells the
    /// subscribers what changed.
    pub fn tick(&mut self) {
        if self
            .discovered
            .is_none_or(|t| t.elapsed() >= DISCOVER_EVERY)
        {
            self.discover();
        }
        for run in self.registry.runs_mut() {
            reap(run);
        }
        self.watch_slurm();
        let capacity = scheduler::Capacity {
            cpu_slots: self.config.cpu_slots,
            cores: self.cores,
            gpus: &self.gpus,
            runs_per_gpu: self.config.runs_per_gpu,
        };
        let mut launch = scheduler::Launch {
            spawn: &mut workers::spawn,
            submit: &mut slurm::submit,
        };
        if !self.shutting_down
            && let Err(e) = scheduler::schedule(&mut self.registry, &capacity, &mut launch)
        {
            tracing::info!("scheduling: {e:#}");
        }
        let listening = self.updates.receiver_count() > 0;
        self.sample_gpus();
        for run in self.registry.runs_mut() {
            refresh(run, &self.updates, listening);
        }
    }

    /// Brings the Slurm runs up to date with squeue's newest listing, if one came.
    fn watch_slurm(&mut self) {
        for run in self.registry.runs_mut() {
            if let Err(e) = slurm::submitted(run) {
                tracing::info!("{}: {e:#}", run.full_name());
            }
        }
        let watching = self.registry.runs().any(|r| r.execution.slurm().is_some());
        let Some(listing) = self.squeue.take(watching) else {
            return;
        };
        if let Err(e) = &listing.jobs {
            tracing::info!("squeue: {e}");
        }
        let timeout = self.config.slurm_start_timeout;
        for run in self.registry.runs_mut() {
            let mut cancel = |id| {
                slurm::cancel_job(id);
                Ok(())
            };
            if let Err(e) = slurm::reconcile(run, &listing, timeout, &mut cancel) {
                tracing::info!("{}: {e:#}", run.full_name());
            }
        }
    }

    /// GPU figures every [`GPU_EVERY`], sent on when they change; each run's GPU memory from
    /// its worker's pid.
    fn sample_gpus(&mut self) {
        if self.gpus.is_empty() || self.gpu_sampled.is_some_and(|t| t.elapsed() < GPU_EVERY) {
            return;
        }
        self.gpu_sampled = Some(Instant::now());
        let stats = self.inventory.stats();
        for run in self.registry.runs_mut() {
            let pid = run.execution.worker().map(Worker::pid);
            run.gpu_memory = pid.and_then(|pid| {
                let held = stats
                    .iter()
                    .flat_map(|g| &g.processes)
                    .filter(|(p, _)| *p == pid);
                held.map(|(_, bytes)| *bytes).reduce(|a, b| a + b)
            });
        }
        if stats != self.gpu_stats {
            self.gpu_stats = stats.clone();
            self.announce(Update::Gpus { gpus: stats });
        }
    }

    /// Sends an update to every subscriber (none listening is fine).
    pub fn announce(&self, update: Update) {
        let _ = self.updates.send(Arc::new(update));
    }

    /// Runs with a live worker (local, or a Slurm job).
    pub fn live_workers(&self) -> usize {
        self.registry.runs().filter(|r| r.is_live()).count()
    }
}

fn adopt(run: &mut Run) {
    // A Slurm run's worker runs wherever Slurm put it: its job id is what finds it again.
    if run.on_slurm() {
        if let Some(job) = slurm::adoptable(run) {
            tracing::info!(
                "{}: watching Slurm job {} again",
                run.full_name(),
                job.job_id()
            );
            run.execution = Execution::Slurm(job);
        } else if run.state.status.is_live()
            && let Err(e) = workers::interrupted(run, "no Slurm job is recorded for it")
        {
            tracing::info!("{}: {e:#}", run.full_name());
        }
        return;
    }
    if !run.state.status.is_live() {
        return;
    }
    match workers::adoptable(&run.state) {
        Some(worker) => {
            tracing::info!("{}: adopted worker pid {}", run.full_name(), worker.pid());
            run.execution = Execution::Local(worker);
            run.gpu = run
                .state
                .device
                .strip_prefix("tch:cuda:")
                .and_then(|n| n.parse().ok());
        }
        None => {
            let why = format!(
                "the worker (pid {} on {}) is gone",
                run.state.pid, run.state.host
            );
            tracing::info!("{}: {why}: interrupted", run.full_name());
            if let Err(e) = workers::interrupted(run, &why) {
                tracing::info!("{}: {e:#}", run.full_name());
            }
        }
    }
}

fn reap(run: &mut Run) {
    let Some(worker) = run.execution.worker_mut() else {
        return;
    };
    let Some(exit) = worker.poll() else {
        return;
    };
    let pid = worker.pid();
    run.execution = Execution::Idle;
    if let Err(e) = workers::settle(run, pid, exit) {
        tracing::info!("{}: {e:#}", run.full_name());
    }
    tracing::info!(
        "{}: worker pid {pid} ended ({exit:?}): {}",
        run.full_name(),
        run.state.status.word()
    );
}

fn refresh(run: &mut Run, updates: &broadcast::Sender<Arc<Update>>, listening: bool) {
    let changes = run.tail.poll(listening);
    if let Some(state) = changes.state {
        run.state = state;
    }
    // A `thaw train` starts its queued runs when it has a slot: their workers are watched too.
    if run.external
        && run.execution.worker().is_none()
        && let Some(worker) = workers::adoptable(&run.state)
    {
        run.execution = Execution::Local(worker);
    }
    if run.groups.is_none() {
        run.groups = count_params(run);
    }
    if run.transfer.is_none() {
        run.transfer = read_transfer(run);
    }
    let send = |update: Update| {
        let _ = updates.send(Arc::new(update));
    };
    if listening {
        for event in changes.events {
            send(Update::Event {
                session: run.session.clone(),
                run: run.name.clone(),
                event,
            });
        }
        if changes.history_rebuilt {
            send(Update::History {
                run: Box::new(run.snapshot()),
            });
        } else if !changes.rows.is_empty() {
            send(Update::Metrics {
                session: run.session.clone(),
                run: run.name.clone(),
                rows: changes.rows,
            });
        }
    }
    let info = run.info();
    if run.announced.as_ref() != Some(&info) {
        run.announced = Some(info.clone());
        if listening {
            send(Update::Run {
                info: Box::new(info),
            });
        }
    }
}

/// How much of each group the worker loaded from the run's weights, once it has written
/// `transfer.json` (a run from scratch never does).
fn read_transfer(run: &Run) -> Option<Vec<GroupTransfer>> {
    let text = std::fs::read(run.dir.transfer_path()).ok()?;
    let report: TransferReport = serde_json::from_slice(&text).ok()?;
    Some(report.groups)
}

/// The run's layer groups with their parameter counts, once `classes.json` says how many
/// classes its head has. Built once per run: models initialise their parameters lazily, so
/// this allocates no weights.
fn count_params(run: &Run) -> Option<Vec<LayerGroup>> {
    let classes = run.dir.read_classes()?;
    if classes.is_empty() {
        return None;
    }
    let shape = ModelShape {
        classes: classes.len(),
        in_channels: run.spec.in_channels,
        image_size: run.spec.image_size,
    };
    Some(crate::engine::model::groups_of(run.spec.model, shape))
}
