//! The verbs that open the dashboard: `thaw attach`, bare `thaw` (which starts the daemon
//! first if none runs) and `thaw demo`.

use anyhow::Result;

use crate::client::{Client, ClientError};
use crate::paths::Paths;
use crate::protocol::{Request, Response};
use crate::tui::{self, AttachOptions};

/// The demo session, built into the binary so that `thaw demo` works from any directory.
const DEMO_SESSION: &str = include_str!("../../sessions/demo.toml");

/// `thaw attach [SESSION]`.
pub fn attach(options: AttachOptions) -> Result<i32> {
    let paths = Paths::from_env()?;
    tui::attach(&paths, options)?;
    Ok(0)
}

/// `thaw`: attaches, starting the daemon if none runs.
pub fn bare(options: AttachOptions) -> Result<i32> {
    let paths = Paths::from_env()?;
    ensure_daemon(&paths)?;
    tui::attach(&paths, options)?;
    Ok(0)
}

/// `thaw demo`: starts the daemon if needed, launches the demo session unless it exists (or
/// again with `restart`), and attaches to it.
pub fn demo(options: AttachOptions, restart: bool) -> Result<i32> {
    let paths = Paths::from_env()?;
    ensure_daemon(&paths)?;
    let exists = match Client::connect(&paths)?.request(&Request::Status)? {
        Response::Status { runs, .. } => runs.iter().any(|r| r.session == "demo"),
        _ => false,
    };
    if exists && !restart {
        println!("the demo session exists: attaching (`thaw demo --restart` starts it again)");
    } else {
        println!("making the demo data and launching the demo session…");
        let file = std::path::absolute("sessions/demo.toml")?;
        let request = Request::Launch {
            file,
            text: DEMO_SESSION.to_string(),
            replace: restart,
        };
        match Client::connect(&paths)?.request_patiently(&request)? {
            Response::Done { message } => println!("{message}"),
            Response::Error { message } => anyhow::bail!(message),
            other => anyhow::bail!("unexpected answer from the daemon: {other:?}"),
        }
    }
    tui::attach(
        &paths,
        AttachOptions {
            session: Some("demo".into()),
            ..options
        },
    )?;
    Ok(0)
}

/// Starts the daemon unless one answers.
fn ensure_daemon(paths: &Paths) -> Result<()> {
    match Client::connect(paths) {
        Ok(_) => Ok(()),
        Err(ClientError::NotRunning) => {
            crate::daemon::up::up(paths, false)?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
