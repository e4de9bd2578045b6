//! Runs on the Slurm executor, as the daemon sees them: submitted when the scheduler would
//! start them, watched through `squeue --json` on a thread of its own (a slow controller
//! never holds up clients), and settled from Slurm's final state and what the worker wrote
//! into the run directory. Control goes through `desired.json` as for local runs; only
//! stopping a job that has not started, and a stop the worker has carried out, need scancel.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::registry::Execution;
use super::registry::Run;
use super::workers;
use crate::executor::slurm::{self, Job, JobRecord};
use crate::protocol::SlurmInfo;
use crate::run::{EventKind, RunStatus, now};

/// A Slurm run's job while it is Slurm's: pending, running, or requeued.
#[derive(Debug, Clone)]
pub struct SlurmRun {
    pub record: JobRecord,
    /// The job as squeue last listed it.
    pub job: Option<Job>,
    /// When the daemon took charge of the job (submitted or adopted it): a listing asked for
    /// before then may not show it yet.
    since: Instant,
    /// When it was first seen running while no worker had written `state.json`.
    running_since: Option<Instant>,
    /// scancel has been sent.
    cancelled: bool,
    /// Why squeue could not be asked, when it could not.
    pub trouble: Option<String>,
}

impl SlurmRun {
    pub fn new(record: JobRecord) -> Self {
        Self {
            record,
            job: None,
            since: Instant::now(),
            running_since: None,
            cancelled: false,
            trouble: None,
        }
    }

    /// Whether no worker of this job can be running: submitted or pending.
    pub fn not_started(&self) -> bool {
        self.job.as_ref().is_none_or(Job::pending)
    }

    pub fn job_id(&self) -> u64 {
        self.record.job_id
    }

    /// The job as `status` shows it.
    pub fn info(&self) -> SlurmInfo {
        let job = self.job.as_ref();
        SlurmInfo {
            job_id: self.job_id(),
            state: job.map_or_else(|| "SUBMITTED".into(), |j| j.state.clone()),
            reason: job.and_then(|j| j.reason()).map(String::from),
            node: job.filter(|j| !j.node.is_empty()).map(|j| j.node.clone()),
            restarts: job.map_or(0, |j| j.restarts),
        }
    }

    /// The status and message the run shows while Slurm has the job: queued while it is
    /// pending, running once it runs (before its worker has said so itself), else what the
    /// worker wrote.
    pub fn overlay(&self, worker: RunStatus) -> Option<(RunStatus, String)> {
        let id = self.job_id();
        let job = self.job.as_ref();
        let trouble = self
            .trouble
            .as_ref()
            .map_or(String::new(), |t| format!(" (squeue: {t})"));
        match job {
            None => Some((
                RunStatus::Queued,
                format!("submitted as Slurm job {id}{trouble}"),
            )),
            Some(job) if job.pending() => {
                let reason = job.reason().unwrap_or("waiting to be scheduled");
                let requeued = match job.restarts {
                    0 => String::new(),
                    n => format!(
                        ", requeued by Slurm (restart {n}): it resumes from its last checkpoint"
                    ),
                };
                Some((
                    RunStatus::Queued,
                    format!("Slurm job {id} pending ({reason}){requeued}{trouble}"),
                ))
            }
            Some(job) if job.running() => match worker {
                RunStatus::Queued | RunStatus::Waiting | RunStatus::Interrupted => Some((
                    RunStatus::Running,
                    format!(
                        "Slurm job {id} running on {}: its worker is starting",
                        job.node
                    ),
                )),
                RunStatus::Paused => Some((
                    RunStatus::Paused,
                    format!(
                        "paused; Slurm job {id} keeps its allocation on {} while paused",
                        job.node
                    ),
                )),
                _ => None,
            },
            Some(_) => None,
        }
    }
}

/// Asks squeue on a thread of its own, every `every`, while there are jobs to watch.
pub struct Watcher {
    wanted: Arc<AtomicBool>,
    latest: Arc<Mutex<Option<Listing>>>,
}

/// One answer from squeue, and when it was asked for.
pub struct Listing {
    pub asked: Instant,
    pub jobs: Result<HashMap<u64, Job>, String>,
}

impl Watcher {
    pub fn start(every: Duration) -> Self {
        let wanted = Arc::new(AtomicBool::new(false));
        let latest = Arc::new(Mutex::new(None));
        let (w, l) = (wanted.clone(), latest.clone());
        std::thread::Builder::new()
            .name("squeue".into())
            .spawn(move || {
                loop {
                    if w.load(Ordering::Relaxed) {
                        let asked = Instant::now();
                        let jobs = slurm::jobs().map_err(|e| format!("{e:#}"));
                        *l.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(Listing { asked, jobs });
                    }
                    std::thread::sleep(every);
                }
            })
            .expect("start the squeue thread");
        Self { wanted, latest }
    }

    /// The newest listing not yet taken; `watching` says whether there are jobs to ask about.
    pub fn take(&self, watching: bool) -> Option<Listing> {
        self.wanted.store(watching, Ordering::Relaxed);
        self.latest.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// A submission under way: sbatch runs on a thread of its own, so a slow or unreachable
/// slurmctld never holds up the daemon, and the job's record is written as soon as sbatch
/// answers (a daemon stopped meanwhile finds the job in `slurm.json`).
#[derive(Debug)]
pub struct Submitting {
    answer: mpsc::Receiver<Result<JobRecord, String>>,
    partition: Option<String>,
}

/// Starts submitting a run whose turn it is; [`submitted`] takes sbatch's answer.
pub fn submit(run: &mut Run) -> Result<()> {
    let spec = run
        .spec
        .executor
        .slurm()
        .expect("only Slurm runs are submitted")
        .clone();
    run.change_desired(|d| d.stop = false)?;
    let (send, answer) = mpsc::channel();
    let (dir, name) = (run.dir.clone(), run.full_name());
    let partition = spec.partition.clone();
    std::thread::Builder::new()
        .name("sbatch".into())
        .spawn(move || {
            let record = slurm::submit(&dir, &name, &spec).and_then(|id| {
                let record = JobRecord {
                    job_id: id,
                    submitted: now(),
                    state: "SUBMITTED".into(),
                    ended: false,
                    node: String::new(),
                    restarts: 0,
                };
                record.write(&dir)?;
                Ok(record)
            });
            let _ = send.send(record.map_err(|e| format!("{e:#}")));
        })?;
    run.execution = Execution::Submitting(Submitting { answer, partition });
    run.queued_reason = None;
    // No worker has written yet: the one that does puts its pid here.
    run.state.status = RunStatus::Queued;
    run.state.message = Some("submitting to Slurm (sbatch)".into());
    run.state.pid = 0;
    run.state.pid_start = 0;
    run.state.host = String::new();
    run.state.updated = now();
    run.dir.write_state(&run.state)
}

/// Takes sbatch's answer for a run being submitted, once it has come: the job is watched
/// from then on, or the run fails with Slurm's message and the others go on.
pub fn submitted(run: &mut Run) -> Result<()> {
    let Some(submitting) = run.execution.submitting() else {
        return Ok(());
    };
    let answer = match submitting.answer.try_recv() {
        Ok(answer) => answer,
        Err(mpsc::TryRecvError::Empty) => return Ok(()),
        Err(mpsc::TryRecvError::Disconnected) => Err("sbatch's thread ended unanswered".into()),
    };
    let partition = run.execution.take_submitting().and_then(|s| s.partition);
    let record = match answer {
        Ok(record) => record,
        Err(e) => {
            let why = format!("cannot submit to Slurm: {e}");
            tracing::info!("{}: {why}", run.full_name());
            return workers::record(run, RunStatus::Failed, EventKind::Error, why);
        }
    };
    let id = record.job_id;
    run.job = Some(record.clone());
    run.execution = Execution::Slurm(SlurmRun::new(record));
    let on = partition.map_or(String::new(), |p| format!(" on partition {p}"));
    let message = format!("submitted as Slurm job {id}{on}");
    event(run, EventKind::Slurm, &message)?;
    run.state.message = Some(message.clone());
    run.dir.write_state(&run.state)?;
    tracing::info!("{}: {message}", run.full_name());
    Ok(())
}

/// The job a run's directory names, when it has not ended: a restarted daemon watches it
/// again.
pub fn adoptable(run: &Run) -> Option<SlurmRun> {
    let record = JobRecord::read(&run.dir)?;
    (!record.ended).then(|| SlurmRun::new(record))
}

/// Cancels a Slurm job (scancel; tests record instead).
pub type Cancel<'a> = dyn FnMut(u64) -> Result<()> + 'a;

/// Brings one Slurm run up to date with a listing.
pub fn reconcile(
    run: &mut Run,
    listing: &Listing,
    start_timeout: Duration,
    cancel: &mut Cancel,
) -> Result<()> {
    let Some(watch) = run.execution.slurm_mut() else {
        return Ok(());
    };
    let jobs = match &listing.jobs {
        Ok(jobs) => jobs,
        Err(e) => {
            watch.trouble = Some(e.clone());
            return Ok(());
        }
    };
    watch.trouble = None;
    let id = watch.job_id();
    let Some(job) = jobs.get(&id).cloned() else {
        if listing.asked > watch.since {
            return ended(run, None);
        }
        return Ok(());
    };
    if job.ended() {
        return ended(run, Some(&job));
    }
    let before = watch.job.replace(job.clone());
    let requeued = before.as_ref().is_some_and(|b| job.restarts > b.restarts);
    let mut record = watch.record.clone();
    record.state = job.state.clone();
    record.restarts = job.restarts;
    if !job.node.is_empty() {
        record.node = job.node.clone();
    }
    if record != watch.record {
        record.write(&run.dir)?;
        watch.record = record.clone();
        run.job = Some(record);
    }
    if job.running() && run.state.pid == 0 {
        let since = *watch.running_since.get_or_insert_with(Instant::now);
        if since.elapsed() > start_timeout {
            let log = run.dir.slurm_log(id);
            let why = format!(
                "Slurm job {id} has run on {} for {:.0} s, but its worker has not written {}: is the run directory on a filesystem that node shares too? (see {})",
                job.node,
                start_timeout.as_secs_f64(),
                run.dir.state_path().display(),
                log.display()
            );
            let _ = cancel(id);
            return finish(run, RunStatus::Failed, EventKind::Error, why);
        }
    }
    let stop_done = run.state.status.ended_as_meant();
    let stop_now = run.desired.stop && (job.pending() || stop_done);
    if stop_now && !watch.cancelled {
        // A job not running yet has no worker to checkpoint; a worker that has stopped
        // leaves nothing behind but its job.
        watch.cancelled = true;
        cancel(id)?;
    }
    if requeued {
        let message = format!(
            "Slurm requeued job {id} (restart {}): it resumes from its last checkpoint when it runs again",
            job.restarts
        );
        event(run, EventKind::Requeued, &message)?;
    }
    Ok(())
}

/// The job is over (or Slurm no longer knows it): the run keeps what its worker recorded as
/// its end, else Slurm's state says why it ended.
fn ended(run: &mut Run, job: Option<&Job>) -> Result<()> {
    let Some(mut watch) = run.execution.take_slurm() else {
        return Ok(());
    };
    let id = watch.job_id();
    watch.record.ended = true;
    watch.record.state = job.map_or_else(|| "GONE".into(), |j| j.state.clone());
    watch.record.write(&run.dir)?;
    run.job = Some(watch.record.clone());
    if let Ok(state) = run.dir.read_state() {
        run.state = state;
    }
    let state = job.map_or("GONE", |j| j.state.as_str());
    tracing::info!(
        "{}: Slurm job {id} ended ({state}); the worker said {:?}",
        run.full_name(),
        run.state.status
    );
    let log = run.dir.slurm_log(id);
    match (run.state.status, state) {
        (status, _) if status.is_settled() => Ok(()),
        (_, "CANCELLED") if run.desired.stop => finish(
            run,
            RunStatus::Stopped,
            EventKind::Stopped,
            format!("stopped (Slurm job {id} cancelled)"),
        ),
        (_, "CANCELLED") => workers::interrupted(
            run,
            &format!("Slurm job {id} was cancelled outside thaw (scancel, or an administrator)"),
        ),
        (_, "TIMEOUT") => workers::interrupted(
            run,
            &format!(
                "Slurm job {id} reached its time limit before it could checkpoint and requeue (a larger executor grace gives it more warning)"
            ),
        ),
        (_, "NODE_FAIL" | "BOOT_FAIL") => {
            workers::interrupted(run, &format!("the node of Slurm job {id} failed ({state})"))
        }
        (_, "GONE") => workers::interrupted(
            run,
            &format!("Slurm no longer knows job {id}, and its worker recorded no end"),
        ),
        (RunStatus::Interrupted, _) => workers::interrupted(
            run,
            &format!("Slurm job {id} ended ({state}) after its worker checkpointed"),
        ),
        (_, _) => {
            // The worker's own error says more than Slurm's exit code.
            let worker_error = run
                .dir
                .read_events()
                .pop()
                .filter(|e| e.kind == EventKind::Error)
                .map(|e| e.message);
            let exit = job.map_or_else(String::new, |j| format!(", {}", j.exit()));
            let said = slurm::last_log_line(&run.dir, id)
                .map_or(String::new(), |line| format!(": {line:?}"));
            let see = match log.exists() {
                true => format!("see {}", log.display()),
                false => format!(
                    "its log {} is not there either: is the run directory on a filesystem the node{} shares?",
                    log.display(),
                    job.filter(|j| !j.node.is_empty())
                        .map_or(String::new(), |j| format!(" {}", j.node))
                ),
            };
            let why = worker_error.unwrap_or_else(|| {
                format!("Slurm job {id} ended {state}{exit} without its worker recording why{said}; {see}")
            });
            finish(run, RunStatus::Failed, EventKind::Error, why)
        }
    }
}

fn finish(run: &mut Run, status: RunStatus, kind: EventKind, why: String) -> Result<()> {
    run.execution = Execution::Idle;
    workers::record(run, status, kind, why)
}

/// Appends an event the daemon saw (the worker is not running while it does).
fn event(run: &Run, kind: EventKind, message: &str) -> Result<()> {
    run.dir.append_event(&run.state.event(kind, message))
}

/// Cancels a run's job, for a stop before the job runs.
pub fn cancel(run: &mut Run) -> Result<String> {
    let Some(watch) = run.execution.slurm_mut() else {
        anyhow::bail!("{} has no Slurm job", run.full_name());
    };
    let id = watch.job_id();
    cancel_job(id);
    watch.cancelled = true;
    Ok(format!("cancelling Slurm job {id}"))
}

/// scancel on a thread of its own (a slow slurmctld never holds up the daemon); a failure
/// goes to the daemon's log, and the job goes on being watched.
pub fn cancel_job(id: u64) {
    let spawned = std::thread::Builder::new()
        .name("scancel".into())
        .spawn(move || {
            if let Err(e) = slurm::cancel(id, None) {
                tracing::info!("cannot cancel Slurm job {id}: {e:#}");
            }
        });
    if let Err(e) = spawned {
        tracing::info!("cannot cancel Slurm job {id}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::Paths;
    use crate::session::{SessionSpec, store};

    /// A Slurm run whose job 7 the daemon watches, taken charge of a while ago.
    fn watched(dir: &std::path::Path) -> Run {
        let text = "name = \"s\"\n[[runs]]\nname = \"a\"\nmodel = \"mlp\"\ndevice = \"flex\"\nexecutor = { kind = \"slurm\", partition = \"low\" }\n";
        let spec = SessionSpec::parse(text, &dir.join("s.toml")).unwrap();
        let paths = Paths {
            data: dir.join("data"),
            config: dir.join("config"),
            runtime: dir.join("run"),
        };
        let run_dir = store::prepare(&paths, &spec).unwrap().runs.remove(0);
        let mut run = Run::open("s", run_dir).unwrap();
        let mut watch = SlurmRun::new(JobRecord {
            job_id: 7,
            submitted: now(),
            state: "SUBMITTED".into(),
            ended: false,
            node: String::new(),
            restarts: 0,
        });
        watch.since = Instant::now() - Duration::from_secs(60);
        run.execution = Execution::Slurm(watch);
        run
    }

    fn job(state: &str, reason: &str, restarts: u64) -> Job {
        Job {
            id: 7,
            state: state.into(),
            reason: reason.into(),
            restarts,
            node: if state == "PENDING" { "" } else { "n1" }.into(),
            exit_code: 0,
        }
    }

    fn listing(jobs: &[Job]) -> Listing {
        Listing {
            asked: Instant::now(),
            jobs: Ok(jobs.iter().map(|j| (j.id, j.clone())).collect()),
        }
    }

    /// Reconciles with a long start timeout; returns the jobs it cancelled.
    fn see(run: &mut Run, jobs: &[Job]) -> Vec<u64> {
        see_within(run, jobs, Duration::from_secs(600))
    }

    fn see_within(run: &mut Run, jobs: &[Job], timeout: Duration) -> Vec<u64> {
        let mut cancelled = Vec::new();
        let mut cancel = |id| -> Result<()> {
            cancelled.push(id);
            Ok(())
        };
        reconcile(run, &listing(jobs), timeout, &mut cancel).unwrap();
        cancelled
    }

    /// The worker writes `state.json` as it would on the node.
    fn worker_wrote(run: &mut Run, status: RunStatus) {
        run.state.status = status;
        run.state.pid = 4242;
        run.dir.write_state(&run.state).unwrap();
    }

    #[test]
    fn a_pending_job_shows_queued_with_slurms_reason_and_requeues_are_said() {
        let dir = tempfile::tempdir().unwrap();
        let mut run = watched(dir.path());
        see(&mut run, &[job("PENDING", "Resources", 0)]);
        let info = run.info();
        assert_eq!(info.status, RunStatus::Queued);
        assert_eq!(
            info.queued_reason.as_deref(),
            Some("Slurm job 7 pending (Resources)")
        );
        assert_eq!(info.slurm.as_ref().unwrap().state, "PENDING");
        // Running, before the worker has written: running, starting.
        see(&mut run, &[job("RUNNING", "None", 0)]);
        let info = run.info();
        assert_eq!(info.status, RunStatus::Running);
        assert!(info.message.unwrap().contains("worker is starting"));
        assert_eq!(JobRecord::read(&run.dir).unwrap().node, "n1");
        // Preempted: the worker checkpointed, Slurm requeued the job.
        worker_wrote(&mut run, RunStatus::Interrupted);
        see(&mut run, &[job("PENDING", "BeginTime", 1)]);
        let info = run.info();
        assert_eq!(info.status, RunStatus::Queued);
        assert!(
            info.queued_reason
                .unwrap()
                .contains("requeued by Slurm (restart 1)"),
        );
        let requeued = run
            .dir
            .read_events()
            .into_iter()
            .filter(|e| e.kind == EventKind::Requeued);
        assert_eq!(requeued.count(), 1);
        assert!(run.execution.slurm().is_some());
    }

    #[test]
    fn a_job_cancelled_outside_thaw_is_interrupted_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let mut run = watched(dir.path());
        see(&mut run, &[job("RUNNING", "None", 0)]);
        worker_wrote(&mut run, RunStatus::Interrupted);
        see(&mut run, &[job("CANCELLED", "None", 0)]);
        assert!(run.execution.slurm().is_none());
        assert_eq!(run.state.status, RunStatus::Interrupted);
        let message = run.state.message.clone().unwrap();
        assert!(message.contains("cancelled outside thaw"), "{message}");
        let record = JobRecord::read(&run.dir).unwrap();
        assert!(record.ended && record.state == "CANCELLED");
        assert_eq!(run.info().slurm.unwrap().state, "CANCELLED");
    }

    #[test]
    fn a_stop_cancels_a_pending_job_and_ends_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let mut run = watched(dir.path());
        run.change_desired(|d| d.stop = true).unwrap();
        assert_eq!(see(&mut run, &[job("PENDING", "Priority", 0)]), [7]);
        // Cancelled once, not at every look.
        assert!(see(&mut run, &[job("PENDING", "Priority", 0)]).is_empty());
        see(&mut run, &[job("CANCELLED", "None", 0)]);
        assert_eq!(run.state.status, RunStatus::Stopped);
    }

    #[test]
    fn what_the_worker_recorded_wins_over_slurms_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut run = watched(dir.path());
        worker_wrote(&mut run, RunStatus::Finished);
        // Preemption's grace ran out as the run finished: Slurm says TIMEOUT.
        see(&mut run, &[job("TIMEOUT", "TimeLimit", 0)]);
        assert_eq!(run.state.status, RunStatus::Finished);
        assert!(run.execution.slurm().is_none());
    }

    #[test]
    fn a_failed_job_says_why_from_the_worker_or_from_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut run = watched(dir.path());
        std::fs::write(
            run.dir.root.join("slurm-7.log"),
            "slurm_script: line 7: /opt/thaw: No such file or directory\n",
        )
        .unwrap();
        let mut failed = job("FAILED", "NonZeroExitCode", 0);
        failed.exit_code = 127 << 8;
        see(&mut run, &[failed]);
        assert_eq!(run.state.status, RunStatus::Failed);
        let message = run.state.message.clone().unwrap();
        assert!(
            message.contains("exit status 127") && message.contains("No such file"),
            "{message}"
        );
        // No log in the run directory: the node wrote it somewhere thaw cannot see.
        let dir = tempfile::tempdir().unwrap();
        let mut run = watched(dir.path());
        see(&mut run, &[job("FAILED", "NonZeroExitCode", 0)]);
        let message = run.state.message.clone().unwrap();
        assert!(
            message.contains("is not there either")
                && message.contains("filesystem the node n1 shares"),
            "{message}"
        );
    }

    #[test]
    fn a_job_slurm_forgot_is_interrupted_and_resumable() {
        let dir = tempfile::tempdir().unwrap();
        let mut run = watched(dir.path());
        worker_wrote(&mut run, RunStatus::Running);
        see(&mut run, &[]);
        assert_eq!(run.state.status, RunStatus::Interrupted);
        assert!(
            run.state
                .message
                .clone()
                .unwrap()
                .contains("no longer knows job 7")
        );
        // A listing asked for before the job was submitted proves nothing.
        let mut run = watched(dir.path());
        run.execution.slurm_mut().unwrap().since = Instant::now() + Duration::from_secs(60);
        see(&mut run, &[]);
        assert!(run.execution.slurm().is_some());
    }

    #[test]
    fn a_worker_that_never_writes_means_the_run_directory_is_not_shared() {
        let dir = tempfile::tempdir().unwrap();
        let mut run = watched(dir.path());
        run.state.pid = 0;
        let timeout = Duration::from_millis(200);
        assert!(see_within(&mut run, &[job("RUNNING", "None", 0)], timeout).is_empty());
        std::thread::sleep(timeout);
        assert_eq!(
            see_within(&mut run, &[job("RUNNING", "None", 0)], timeout),
            [7]
        );
        assert_eq!(run.state.status, RunStatus::Failed);
        let message = run.state.message.clone().unwrap();
        assert!(
            message.contains("filesystem that node shares too"),
            "{message}"
        );
    }
}
