//! The daemon's verbs: up, down, launch, status, freeze, unfreeze, pause, resume, stop,
//! checkpoint, logs, lr, remove. Each sends the same request the dashboard sends. Colours only on a
//! terminal (and never with NO_COLOR).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use super::render::{colours, event_line, gpu_line, status_table};
use crate::client::{Client, ClientError};
use crate::daemon::registry::Registry;
use crate::paths::Paths;
use crate::protocol::{Control, Request, Response};
use crate::run::Catalog;

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
                &mut Registry::load(&Catalog::of(paths)),
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
}
