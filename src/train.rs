//! `thaw train FILE`: a session's runs in the foreground as worker processes, no daemon.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::executor::local::{Watched, Worker, settle};
use crate::paths::Paths;
use crate::run::Catalog;
use crate::run::{Desired, DesiredRead, RunDir, RunState, RunStatus};
use crate::session::rules::{self, Dependency, Resumer, thread_share};
use crate::session::{RunSpec, SessionSpec, store};
use crate::signals;
use crate::worker::THREADS_ENV;

/// Options of `thaw train`.
pub struct TrainArgs<'a> {
    pub file: &'a Path,
    pub run: Option<&'a str>,
    pub jobs: Option<usize>,
}

struct Slot {
    name: String,
    run: RunDir,
    /// The run of this session whose best weights this one starts from.
    waits_for: Option<String>,
    child: Option<Worker>,
    last: Option<(RunStatus, usize)>,
    result: Option<RunStatus>,
    /// Its `train.lock`, held until it has ended here (see [`crate::run::lock::claim_for_train`]).
    claim: Option<std::fs::File>,
}

/// Runs the session's runs, `jobs` at a time; returns the process exit status.
pub fn main(args: TrainArgs) -> Result<i32> {
    let mut spec = SessionSpec::load(args.file)?;
    if let Some(run) = args.run {
        spec = spec.select(run)?;
    }
    let paths = Paths::from_env()?;
    // A run the daemon (or another `thaw train`) trains is theirs: two workers on one run
    // would corrupt its checkpoints, and watching theirs here would pass for training it.
    for run in &spec.runs {
        let dir = Catalog::of(&paths).run(&spec.name, &run.name);
        if let Some(pid) = crate::run::lock::training(&dir) {
            anyhow::bail!(
                "run {}/{} is being trained by another worker (pid {pid}: the daemon's, or another `thaw train`): stop it there first (`thaw stop {}/{}`), or watch it with `thaw attach`",
                spec.name,
                run.name,
                spec.name,
                run.name
            );
        }
    }
    let prepared = store::prepare(&paths, &spec)?;
    for data in spec
        .runs
        .iter()
        .filter_map(|r| r.data.strip_prefix("demo:"))
    {
        // Generated here once, before the workers start, rather than by each of them.
        crate::engine::data::ensure_demo(&paths.demo_data(), data)?;
    }
    println!(
        "session {}: run directories in {}",
        spec.name,
        Catalog::of(&paths).runs_dir(&spec.name).display()
    );
    for (_, line) in &prepared.changed {
        println!("changed: {line}");
    }
    signals::install();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let jobs = args
        .jobs
        .unwrap_or(spec.runs.len())
        .clamp(1, spec.runs.len());
    let mut slots: Vec<Slot> = spec
        .runs
        .iter()
        .zip(prepared.runs)
        .map(|(r, run)| Slot {
            name: r.name.clone(),
            run,
            waits_for: r.waits_for().map(str::to_string),
            child: None,
            last: None,
            result: None,
            claim: None,
        })
        .collect();
    for (slot, spec) in slots.iter_mut().zip(&spec.runs) {
        if let Some((done, more)) = finished_for_good(&slot.run, spec) {
            println!("{}: {done}; skipped ({more})", slot.name);
            slot.result = Some(RunStatus::Finished);
        }
    }
    // A daemon started now, or watching already, leaves these runs to this command.
    for slot in slots.iter_mut().filter(|s| s.result.is_none()) {
        slot.claim = Some(crate::run::lock::claim_for_train(&slot.run)?);
    }
    let live = std::io::stdout().is_terminal();
    let mut drawn_lines = 0;
    loop {
        let running = slots.iter().filter(|s| s.child.is_some()).count();
        if !signals::interrupted() {
            let mut ready = Vec::new();
            for i in 0..slots.len() {
                if slots[i].child.is_some() || slots[i].result.is_some() {
                    continue;
                }
                match dependency(&slots, i) {
                    Dependency::Ready => ready.push(i),
                    Dependency::Waiting(why) => mark_waiting(&mut slots[i], why)?,
                    Dependency::Failed(why) => {
                        let state = RunState::before_training(RunStatus::Failed, Some(why.clone()));
                        slots[i].run.write_state(&state)?;
                        eprintln!("{}: failed: {why}", slots[i].name);
                        slots[i].result = Some(RunStatus::Failed);
                    }
                }
            }
            // The cores are shared by the runs that will be training together.
            let together = (running + ready.len()).min(jobs);
            let threads = thread_share(cores, together);
            for i in ready.into_iter().take(jobs.saturating_sub(running)) {
                starting(&slots[i].run)?;
                slots[i].child = Some(Worker::Child(spawn(&slots[i].run, threads)?));
            }
        }
        for slot in &mut slots {
            reap(slot, &spec.name)?;
            if slot.result.is_some() {
                // Ended here: the run is free for the daemon (`thaw resume`) or `thaw remove`.
                slot.claim = None;
            }
        }
        if live {
            drawn_lines = draw(&slots, drawn_lines)?;
        } else {
            let names = slots.iter().map(|s| s.name.len()).max().unwrap_or(0);
            for slot in &mut slots {
                report(slot, names);
            }
        }
        let pending = slots.iter().any(|s| s.result.is_none());
        let busy = slots.iter().any(|s| s.child.is_some());
        if !busy && (!pending || signals::interrupted()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    summary(&slots)
}

/// How a finished run is done, when these settings give it nothing more to train (`already
/// finished (step N)`), and what would: a finished run given more epochs trains on from its
/// last checkpoint; one that stopped early, only with more patience.
pub fn finished_for_good(run: &RunDir, spec: &RunSpec) -> Option<(String, &'static str)> {
    let state = run.read_state().ok()?;
    let early = stopped_early(run, spec);
    let all_epochs = state.epoch >= spec.epochs;
    if state.status != RunStatus::Finished || !(all_epochs || early) {
        return None;
    }
    let done = format!(
        "already finished{} (step {})",
        if early { " early" } else { "" },
        state.step
    );
    let more = match (all_epochs, early) {
        (true, true) => "raise its epochs and its early_stop_patience to train on",
        (false, _) => "raise its early_stop_patience to train on",
        (true, false) => "raise its epochs to train on",
    };
    Some((done, more))
}

/// Whether the run's last checkpoint has had `early_stop_patience` validations without a better
/// validation loss.
fn stopped_early(run: &RunDir, spec: &RunSpec) -> bool {
    spec.early_stop_patience.is_some_and(|patience| {
        crate::engine::checkpoint::resume_point(run)
            .is_some_and(|(_, saved)| saved.stale_epochs >= patience)
    })
}

/// Whether slot `i` can start: see [`rules::dependency`]. Nothing here resumes a run that was
/// interrupted, so one waiting for it cannot start.
fn dependency(slots: &[Slot], i: usize) -> Dependency {
    let Some(on) = &slots[i].waits_for else {
        return Dependency::Ready;
    };
    let Some(source) = slots.iter().find(|s| &s.name == on) else {
        // Not part of this invocation (--run): its best weights must already be there.
        return Dependency::Ready;
    };
    // Not ended here yet: it waits, whatever its directory said before.
    let status = source.result.unwrap_or(RunStatus::Running);
    rules::dependency(on, &source.run, status, Resumer::Nobody)
}

fn mark_waiting(slot: &mut Slot, why: String) -> Result<()> {
    let waiting = slot
        .run
        .read_state()
        .is_ok_and(|s| s.status == RunStatus::Waiting);
    if !waiting {
        slot.run
            .write_state(&RunState::before_training(RunStatus::Waiting, Some(why)))?;
    }
    Ok(())
}

/// A run that ended before (failed, stopped, interrupted, finished with fewer epochs) is
/// queued again, so its old end is not shown as news before its worker says it runs. A stop or
/// pause asked of an earlier worker (`thaw stop`, through a daemon) is done with: this command
/// is asked to train it.
fn starting(run: &RunDir) -> Result<()> {
    // One that another worker trains (the daemon's) is not touched: ours will be refused.
    if crate::run::lock::training(run).is_some() {
        return Ok(());
    }
    if let Ok(state) = run.read_state()
        && !state.status.is_pending()
    {
        run.write_state(&RunState {
            status: RunStatus::Queued,
            message: None,
            ..state
        })?;
    }
    if let DesiredRead::Good(desired) = run.read_desired()
        && (desired.stop || desired.paused)
    {
        run.write_desired(&Desired {
            stop: false,
            paused: false,
            ..desired
        })?;
    }
    Ok(())
}

fn spawn(run: &RunDir, threads: usize) -> Result<Child> {
    let exe = crate::paths::executable()?;
    let log = run.open_worker_log()?;
    Command::new(exe)
        .arg("worker")
        .arg(&run.root)
        .env(THREADS_ENV, threads.to_string())
        .env(crate::engine::trainer::FAIL_ON_NAN_ENV, "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("cannot start a worker process")
}

fn reap(slot: &mut Slot, session: &str) -> Result<()> {
    let Some(worker) = slot.child.as_mut() else {
        return Ok(());
    };
    if signals::interrupted() {
        // The terminal's Ctrl-C reached the workers too; a signal sent to thaw alone is passed on.
        worker.signal(libc::SIGINT);
    }
    let Some(exit) = worker.poll() else {
        return Ok(());
    };
    let pid = worker.pid();
    slot.child = None;
    // A worker killed or crashed before writing how it ended is recorded failed with how it
    // ended, as the daemon records it: its `state.json` would otherwise say it still trains.
    let mut state = slot
        .run
        .read_state()
        .unwrap_or_else(|_| RunState::before_training(RunStatus::Queued, None));
    let mut run = Watched {
        name: format!("{session}/{}", slot.name),
        dir: &slot.run,
        state: &mut state,
    };
    settle(&mut run, pid, exit)?;
    let status = slot
        .run
        .read_state()
        .map(|s| s.status)
        .unwrap_or(RunStatus::Failed);
    slot.result = Some(status);
    if status == RunStatus::Failed {
        eprintln!("{}: failed: {}", slot.name, failure(&slot.run));
    }
    Ok(())
}

/// One run in a line, the most telling figures first so that an 80-column terminal shows them.
fn line(name: &str, width: usize, state: &RunState) -> String {
    let status = state.status.word();
    let progress = match state.total_steps {
        0 => "-".to_string(),
        total => format!(
            "ep {}/{} {}/{total}",
            state.epoch_said(),
            state.epochs,
            state.step
        ),
    };
    let loss = state
        .last_loss
        .map(|l| crate::number::fixed(l, 3))
        .unwrap_or_else(|| "-".into());
    let acc = state
        .best_val_accuracy
        .map(|a| format!("{:.1}%", a * 100.0))
        .unwrap_or_else(|| "-".into());
    let speed = state
        .samples_per_sec
        .map(|s| format!(" {s:.0}/s"))
        .unwrap_or_default();
    let left = match (state.status, state.secs_left) {
        (status, Some(secs)) if status.is_stepping() => {
            format!(
                " {} left",
                crate::number::time_left(secs, state.secs_left_grows)
            )
        }
        _ => String::new(),
    };
    let frozen = match state.frozen.is_empty() {
        true => String::new(),
        false => format!(" frozen {}", state.frozen.join(",")),
    };
    format!("{name:<width$} {status:<13} {progress}  loss {loss}  val {acc}{speed}{left}{frozen}")
}

/// Prints a line when a run's step or status changed (stdout not a terminal).
fn report(slot: &mut Slot, names: usize) {
    let Ok(state) = slot.run.read_state() else {
        return;
    };
    let now = (state.status, state.step);
    if slot.last != Some(now) {
        slot.last = Some(now);
        println!("{}", line(&slot.name, names, &state));
    }
}

/// Redraws one line per run in place (stdout a terminal).
fn draw(slots: &[Slot], previous: usize) -> Result<usize> {
    use crossterm::{QueueableCommand, cursor, terminal};
    let mut out = std::io::stdout();
    if previous > 0 {
        out.queue(cursor::MoveUp(previous as u16))?;
    }
    let width = terminal::size().map(|(w, _)| w as usize).unwrap_or(120);
    let names = slots.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for slot in slots {
        let text = match slot.run.read_state() {
            Ok(state) => line(&slot.name, names, &state),
            Err(_) => format!("{:<names$} starting", slot.name),
        };
        let text: String = text.chars().take(width.saturating_sub(1)).collect();
        // From the first column: the terminal may have echoed `^C` where the cursor stood.
        out.queue(cursor::MoveToColumn(0))?;
        out.queue(terminal::Clear(terminal::ClearType::CurrentLine))?;
        writeln!(out, "{text}")?;
    }
    out.flush()?;
    Ok(slots.len())
}

/// Why a run failed, as its worker (or thaw) recorded it.
fn failure(run: &RunDir) -> String {
    run.read_state()
        .ok()
        .and_then(|s| s.message)
        .unwrap_or_else(|| {
            format!(
                "the worker exited without a reason; see {}",
                run.worker_log().display()
            )
        })
}

fn summary(slots: &[Slot]) -> Result<i32> {
    let mut code = 0;
    for slot in slots {
        let state = slot.run.read_state().ok();
        let status = slot
            .result
            .or(state.as_ref().map(|s| s.status))
            .unwrap_or(RunStatus::Queued);
        // A failure says why here too: its first report may have scrolled far away.
        let said = match status {
            RunStatus::Failed => Some(failure(&slot.run)),
            _ => state.as_ref().and_then(|s| {
                let acc = s
                    .best_val_accuracy
                    .map(|a| format!("best val acc {:.1}%", a * 100.0));
                // Why it finished before its epochs (stopped early).
                match (acc, &s.message) {
                    (Some(acc), Some(why)) if s.status == RunStatus::Finished => {
                        Some(format!("{acc}; {why}"))
                    }
                    (acc, _) => acc,
                }
            }),
        };
        println!(
            "{}: {} {}",
            slot.name,
            status.word(),
            said.unwrap_or_default()
        );
        code = match status {
            RunStatus::Failed => 1,
            status if status.ended_as_meant() => code,
            _ if code == 0 => 130,
            _ => code,
        };
    }
    if signals::interrupted() {
        println!("interrupted: every run checkpointed; run the same `thaw train` again to resume");
    }
    Ok(code)
}
