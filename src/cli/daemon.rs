//! The daemon's verbs: up, down, launch, status, freeze, unfreeze, pause, resume, stop,
//! checkpoint, logs, lr, remove. Each sends the same request the dashboard sends. Colours only on a
//! terminal (and never with NO_COLOR).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use crossterm::style::Stylize;

use crate::client::{Client, ClientError};
use crate::paths::Paths;
use crate::protocol::{Control, Request, Response, RunInfo};
use crate::run::{Event, RunStatus};

/// The daemon's subcommands (flattened into thaw's command line).
#[derive(Debug, Subcommand)]
pub enum DaemonCommand {
    /// Start the daemon, detached from the terminal (one per user).
    Up {
        /// Stay in the foreground, logging to stderr (for service managers).
        #[arg(long)]
        foreground: bool,
    },
    /// Checkpoint every training run, stop the workers and the daemon.
    Down,
    /// Submit a session file to the daemon; its runs queue and start as devices free up.
    /// Launched again, edited, its new runs queue and runs whose settings changed requeue
    /// (a trained run may change only its epochs, device, rates, freeze schedule and logging).
    Launch {
        /// The session file (TOML).
        file: PathBuf,
        /// Discard the session of the same name (its runs and their files) and start again.
        #[arg(long)]
        replace: bool,
    },
    /// Sessions and runs: status, step, loss, frozen groups.
    Status {
        /// Only this session's runs.
        session: Option<String>,
        /// A JSON array, one object per run (see the README).
        #[arg(long)]
        json: bool,
    },
    /// Freeze layer groups of a run before its next step.
    Freeze {
        /// SESSION/RUN, or RUN when only one session has it.
        run: String,
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Thaw layer groups of a run before its next step.
    Unfreeze {
        run: String,
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Pause a run (its worker waits, holding its slot).
    Pause { run: String },
    /// Continue a paused run, or restart an interrupted, failed or stopped one from its last
    /// checkpoint; --all: every interrupted run.
    Resume {
        #[arg(required_unless_present = "all")]
        run: Option<String>,
        #[arg(long, conflicts_with = "run")]
        all: bool,
    },
    /// Checkpoint and stop a run.
    Stop { run: String },
    /// Write a checkpoint of a run now.
    Checkpoint { run: String },
    /// A run's events as text; --follow: then each new one until the run ends.
    Logs {
        run: String,
        #[arg(long, short)]
        follow: bool,
    },
    /// Delete runs, or whole sessions, with their files (checkpoints, metrics, best weights).
    /// A run must not be training: stop it first.
    Remove {
        /// SESSION/RUN, or RUN when only one session has it.
        #[arg(required_unless_present = "session")]
        runs: Vec<String>,
        /// A whole session (repeatable).
        #[arg(long)]
        session: Vec<String>,
    },
    /// Change a run's learning-rate multiplier: x2, /2, or a value.
    Lr {
        run: String,
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
}

/// Runs one verb; returns the exit status.
pub fn main(command: DaemonCommand) -> Result<i32> {
    let paths = Paths::from_env()?;
    // Without a daemon, written for the worker of a `thaw train` to apply.
    let control = |run: String, control: Control| match Client::connect(&paths) {
        Ok(mut client) => answer(client.request(&Request::Control { run, control })?),
        Err(ClientError::NotRunning) => {
            println!("{}", super::offline::control(&paths, &run, control)?);
            Ok(0)
        }
        Err(e) => Err(e.into()),
    };
    match command {
        DaemonCommand::Up { foreground } => crate::daemon::up::up(&paths, foreground),
        DaemonCommand::Down => down(&paths),
        DaemonCommand::Launch { file, replace } => launch(&paths, &file, replace),
        DaemonCommand::Status { session, json } => status(&paths, session.as_deref(), json),
        DaemonCommand::Freeze { run, groups } => control(run, Control::Freeze { groups }),
        DaemonCommand::Unfreeze { run, groups } => control(run, Control::Unfreeze { groups }),
        DaemonCommand::Pause { run } => control(run, Control::Pause),
        DaemonCommand::Resume { all: true, .. } => {
            answer(Client::connect(&paths)?.request(&Request::ResumeAll)?)
        }
        DaemonCommand::Resume { run, all: false } => match run {
            Some(run) => control(run, Control::Resume),
            None => bail!("name a RUN to resume, or --all for every interrupted run"),
        },
        DaemonCommand::Stop { run } => control(run, Control::Stop),
        DaemonCommand::Checkpoint { run } => control(run, Control::Checkpoint),
        DaemonCommand::Logs { run, follow } => logs(&paths, run, follow),
        DaemonCommand::Lr { run, value } => control(run, lr_control(&value)?),
        DaemonCommand::Remove { runs, session } => remove(&paths, runs, session),
    }
}

/// `x2` / `*2` multiplies, `/2` divides, a plain number sets the multiplier.
pub fn lr_control(value: &str) -> Result<Control> {
    let number = |s: &str| {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v > 0.0)
            .with_context(|| {
                format!("{value:?} is not a learning-rate change: use x2, /2 or a positive number")
            })
    };
    Ok(match value.chars().next() {
        Some('x' | '*') => Control::LrScale(number(&value[1..])?),
        Some('/') => Control::LrScale(1.0 / number(&value[1..])?),
        _ => Control::LrSet(number(value)?),
    })
}

fn answer(response: Response) -> Result<i32> {
    match response {
        Response::Done { message } => {
            println!("{message}");
            Ok(0)
        }
        Response::Error { message } => bail!(message),
        other => bail!("unexpected answer from the daemon: {other:?}"),
    }
}

fn down(paths: &Paths) -> Result<i32> {
    let mut client = match Client::connect(paths) {
        Ok(client) => client,
        Err(ClientError::NotRunning) => {
            println!("no thaw daemon is running");
            return Ok(0);
        }
        Err(ClientError::Version {
            pid,
            daemon_version,
            ..
        }) => return down_other_version(pid, &daemon_version),
        Err(e) => return Err(e.into()),
    };
    println!("asking every run to checkpoint and stop...");
    let pid = client.daemon.pid;
    let code = answer(client.request_patiently(&Request::Shutdown)?)?;
    // Done only when the process is gone (its socket removed): a `thaw up` right after must
    // start a new daemon, not find this one.
    let start = Instant::now();
    while crate::run::process::runs(pid) && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(code)
}

/// A daemon of another thaw (before an upgrade) cannot be asked: it is sent SIGTERM, on which
/// it stops and leaves its workers training for the next daemon to adopt.
fn down_other_version(pid: u32, version: &str) -> Result<i32> {
    // SAFETY: kill(2) with a pid the daemon gave of itself over this user's private socket.
    if unsafe { libc::kill(pid as i32, libc::SIGTERM) } != 0 {
        bail!(
            "the thaw daemon (pid {pid}, thaw {version}) speaks another protocol and cannot be stopped: {}",
            std::io::Error::last_os_error()
        );
    }
    let start = Instant::now();
    while crate::run::process::runs(pid) && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "the thaw daemon (pid {pid}) was of another thaw ({version}) and speaks another protocol: stopped it with SIGTERM; its runs go on training, and `thaw up` starts this thaw's daemon, which adopts them"
    );
    Ok(0)
}

fn launch(paths: &Paths, file: &Path, replace: bool) -> Result<i32> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read session file {}", file.display()))?;
    let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let request = Request::Launch {
        file,
        text,
        replace,
    };
    answer(Client::connect(paths)?.request(&request)?)
}

/// Through the daemon; without one (runs trained with `thaw train`), on the sessions on disk,
/// with the same checks.
fn remove(paths: &Paths, runs: Vec<String>, sessions: Vec<String>) -> Result<i32> {
    match Client::connect(paths) {
        Ok(mut client) => answer(client.request(&Request::Remove { runs, sessions })?),
        Err(ClientError::NotRunning) => {
            let removed = crate::daemon::handlers::remove::remove(
                &mut super::offline::registry(paths),
                paths,
                &runs,
                &sessions,
                &mut |_| {},
            );
            match removed {
                Ok(message) => {
                    println!("{message}");
                    Ok(0)
                }
                Err(why) => bail!(why),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Through the daemon; without one, from the run directories on disk.
fn status(paths: &Paths, session: Option<&str>, json: bool) -> Result<i32> {
    let (mut runs, gpus) = match Client::connect(paths) {
        Ok(mut client) => match client.request(&Request::Status)? {
            Response::Status { runs, gpus } => (runs, gpus),
            other => return answer(other),
        },
        Err(ClientError::NotRunning) => {
            if !json {
                eprintln!("no thaw daemon is running: the runs as their directories hold them");
            }
            super::offline::status(paths)
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(session) = session {
        if !runs.iter().any(|r| r.session == session) {
            let mut known: Vec<&str> = runs.iter().map(|r| r.session.as_str()).collect();
            known.dedup();
            bail!(crate::daemon::registry::no_session(session, &known));
        }
        runs.retain(|r| r.session == session);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
        return Ok(0);
    }
    if runs.is_empty() {
        println!(
            "no sessions: launch one with `thaw launch FILE` (or train one with `thaw train FILE`)"
        );
        return Ok(0);
    }
    print!("{}", status_table(&runs, colours()));
    for gpu in &gpus {
        println!("{}", gpu_line(gpu));
    }
    Ok(0)
}

/// `GPU 0  NVIDIA H100 80GB HBM3  87%  31.2/80.0 GiB  61°C  592 W`; a figure NVML did not give
/// is `-`.
pub fn gpu_line(gpu: &crate::gpu::GpuStats) -> String {
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    format!(
        "GPU {}  {}  {}  {}/{:.1} GiB  {}  {}",
        gpu.index,
        gpu.name,
        or_dash(gpu.utilization.map(|u| format!("{u}%"))),
        or_dash(gpu.memory_used.map(|m| format!("{:.1}", gib(m)))),
        gib(gpu.memory_total),
        or_dash(gpu.temperature.map(|t| format!("{t}°C"))),
        or_dash(gpu.power.map(|w| format!("{w:.0} W"))),
    )
}

fn colours() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// The runs as a table, a line each, with what a run waits for or why it failed below it.
pub fn status_table(runs: &[RunInfo], colour: bool) -> String {
    // A column as wide as its widest cell, or its header.
    let widest = |cell: fn(&RunInfo) -> String, header: &str| {
        runs.iter()
            .map(|r| cell(r).len())
            .fold(header.len(), usize::max)
    };
    let name_width = widest(RunInfo::full_name, "RUN");
    let device_width = widest(RunInfo::device_said, "DEVICE");
    let mut out = format!(
        "{:<name_width$}  {:<13} {:<device_width$} {:>13} {:>7} {:>8} {:>8} {:>7}  FROZEN\n",
        "RUN", "STATUS", "DEVICE", "STEP", "EPOCH", "LOSS", "VAL ACC", "LEFT"
    );
    for run in runs {
        let word = format!("{:<13}", run.status.word());
        let word = match (colour, run.status) {
            (false, _) => word,
            (true, RunStatus::Running | RunStatus::Finished) => word.green().to_string(),
            (true, RunStatus::Failed) => word.red().to_string(),
            (true, RunStatus::Paused | RunStatus::Interrupted) => word.yellow().to_string(),
            (true, _) => word.dim().to_string(),
        };
        let step = match run.total_steps {
            0 => run.step.to_string(),
            total => format!("{}/{total}", run.step),
        };
        let epoch = format!("{}/{}", run.epoch_in_progress(), run.epochs);
        let loss = run
            .last_loss
            .map_or("-".into(), |l| crate::number::fixed(l, 4));
        let acc = run
            .best_val_accuracy
            .map_or("-".into(), |a| format!("{:.1}%", a * 100.0));
        let left = run.time_left_said();
        let frozen: Vec<&str> = run
            .groups
            .iter()
            .filter(|g| g.frozen)
            .map(|g| g.name.as_str())
            .collect();
        out.push_str(&format!(
            "{:<name_width$}  {word} {:<device_width$} {step:>13} {epoch:>7} {loss:>8} {acc:>8} {left:>7}  {}\n",
            run.full_name(),
            run.device_said(),
            match frozen.is_empty() {
                true => "-".to_string(),
                false => frozen.join(","),
            }
        ));
        let note = run.queued_reason.as_ref().or(run.message.as_ref());
        if let Some(note) = note {
            out.push_str(&format!("{:<name_width$}    {note}\n", ""));
        }
        if let Some(line) = run.slurm_line()
            && !note.is_some_and(|n| n.contains("Slurm job"))
        {
            out.push_str(&format!("{:<name_width$}    {line}\n", ""));
        }
    }
    out
}

/// Through the daemon; without one, from the run's `events.jsonl` on disk.
fn logs(paths: &Paths, run: String, follow: bool) -> Result<i32> {
    let client = match Client::connect(paths) {
        Ok(client) => client,
        Err(ClientError::NotRunning) => {
            super::offline::logs(paths, &run, follow, |event| {
                println!("{}", event_line(event))
            })?;
            return Ok(0);
        }
        Err(e) => return Err(e.into()),
    };
    let responses = client.stream(&Request::Logs { run, follow })?;
    for response in responses {
        match response? {
            Response::Events { events, .. } => {
                for event in &events {
                    println!("{}", event_line(event));
                }
            }
            Response::Error { message } => bail!(message),
            other => bail!("unexpected answer from the daemon: {other:?}"),
        }
    }
    Ok(0)
}

/// An event as one line of text: UTC time, step, epoch, kind, message, groups.
pub fn event_line(event: &Event) -> String {
    let time = crate::number::utc(event.time);
    let groups = match event.groups.is_empty() {
        true => String::new(),
        false => format!(" [{}]", event.groups.join(", ")),
    };
    format!(
        "{time} step {} epoch {} {:<11} {}{groups}",
        event.step, event.epoch, event.kind, event.message
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lr_changes_parse() {
        assert_eq!(lr_control("x2").unwrap(), Control::LrScale(2.0));
        assert_eq!(lr_control("/2").unwrap(), Control::LrScale(0.5));
        assert_eq!(lr_control("0.1").unwrap(), Control::LrSet(0.1));
        assert!(lr_control("-1").is_err());
        assert!(lr_control("x").is_err());
    }

    #[test]
    fn a_gpu_line_shows_what_nvml_gave() {
        let gpu = crate::gpu::GpuStats {
            index: 1,
            name: "NVIDIA H100 80GB HBM3".into(),
            utilization: Some(87),
            memory_used: Some(31 << 30),
            memory_total: 80 << 30,
            temperature: None,
            power: Some(592.4),
            processes: vec![],
        };
        assert_eq!(
            gpu_line(&gpu),
            "GPU 1  NVIDIA H100 80GB HBM3  87%  31.0/80.0 GiB  -  592 W"
        );
    }

    fn run(name: &str, status: RunStatus) -> RunInfo {
        RunInfo {
            session: "s".into(),
            name: name.into(),
            status,
            step: 150,
            epoch: 2,
            epochs: 10,
            total_steps: 500,
            batch_size: 32,
            model: "resnet18".into(),
            device: "flex".into(),
            last_loss: Some(0.5),
            groups: vec![],
            message: None,
            best_val_loss: None,
            best_val_accuracy: None,
            samples_per_sec: Some(64.0),
            grad_norm: None,
            secs_left: Some(301.0),
            secs_left_grows: false,
            lr_multiplier: 1.0,
            pid: None,
            queued_reason: None,
            gpu_memory: None,
            slurm: None,
        }
    }

    #[test]
    fn the_status_table_says_the_time_left_of_training_runs_only() {
        let table = status_table(
            &[
                run("a", RunStatus::Running),
                run("b", RunStatus::Paused),
                RunInfo {
                    secs_left: None,
                    ..run("c", RunStatus::Running)
                },
                RunInfo {
                    secs_left_grows: true,
                    ..run("d", RunStatus::Running)
                },
            ],
            false,
        );
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].contains(" LEFT "), "{table}");
        // The worker's reckoning (validation and checkpoints in it), not 350 steps x 32 / 64.
        assert!(lines[1].contains(" 5m01s "), "{table}");
        assert!(
            lines[2].contains(" - "),
            "a paused run has no time left: {table}"
        );
        // From a worker that gives no reckoning: the steps alone, 175 s.
        assert!(lines[3].contains(" 2m55s "), "{table}");
        // Groups thaw later, and steps will be slower: a floor.
        assert!(lines[4].contains(" 5m01s+ "), "{table}");
    }

    #[test]
    fn the_status_table_says_where_each_run_trains() {
        let on = |name: &str, device: &str| RunInfo {
            device: device.into(),
            ..run(name, RunStatus::Running)
        };
        let table = status_table(
            &[
                on("a", "tch:cuda:0"),
                on("b", "tch:cuda:1"),
                on("c", "tch:cpu"),
            ],
            false,
        );
        let lines: Vec<&str> = table.lines().collect();
        let column = lines[0].find("DEVICE").expect("a device column");
        for (line, device) in lines[1..].iter().zip(["cuda:0 ", "cuda:1 ", "tch:cpu "]) {
            assert_eq!(
                line.get(column..column + device.len()),
                Some(device),
                "{table}"
            );
        }
    }

    #[test]
    fn a_slurm_job_that_ended_otherwise_than_its_finished_run_says_so() {
        let job = |state: &str| {
            Some(Box::new(crate::protocol::SlurmInfo {
                job_id: 42,
                state: state.into(),
                reason: None,
                node: Some("n1".into()),
                restarts: 0,
            }))
        };
        let finished = |state: &str| RunInfo {
            slurm: job(state),
            ..run("a", RunStatus::Finished)
        };
        let table = status_table(&[finished("TIMEOUT"), finished("COMPLETED")], false);
        assert!(
            table.contains("Slurm job 42 TIMEOUT on n1 (after the run had finished)"),
            "{table}"
        );
        assert!(table.contains("Slurm job 42 COMPLETED on n1\n"), "{table}");
    }
}
