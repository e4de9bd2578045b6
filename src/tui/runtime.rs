//! The dashboard's loop: keys, the daemon's subscription, replies and host samples arrive on
//! one channel; the app takes each in, and the screen is redrawn at most ten times a second
//! and only when something changed. The subscription reconnects when the daemon goes away
//! and comes back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use crossterm::event::{self, Event as TermEvent, KeyEventKind};

use super::app::{App, Effect, Input};
use super::host::HostSampler;
use crate::client::{Client, Responses};
use crate::paths::Paths;
use crate::protocol::{Request, Response};

/// At most this many frames a second, for what the user did (a key, a reply, a resize).
const FRAME: Duration = Duration::from_millis(100);
/// What training changes (steps, losses, sparklines) is drawn at most once a second: the eye
/// gains little from more, and a slow SSH link pays for every frame.
const DATA_FRAME: Duration = Duration::from_secs(1);
/// How often the header's host figures are sampled.
const HOST_EVERY: Duration = Duration::from_secs(2);
/// How often a lost daemon is tried again.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// Subscribes to `session` (all when `None`); errors here (no daemon, an unknown session) are
/// reported before the screen is taken over.
pub fn subscribe(paths: &Paths, session: Option<&str>) -> Result<(u32, Responses, Response)> {
    let client = Client::connect(paths)?;
    let pid = client.daemon.pid;
    let mut responses = client.stream(&Request::Subscribe {
        session: session.map(String::from),
    })?;
    match responses.next() {
        Some(Ok(Response::Error { message })) => bail!(message),
        Some(Ok(first)) => Ok((pid, responses, first)),
        Some(Err(e)) => Err(e.into()),
        None => bail!("the daemon closed the connection before sending the runs"),
    }
}

/// Runs the dashboard until the user detaches.
pub fn run(mut app: App, paths: &Paths, session: Option<String>) -> Result<()> {
    let (pid, responses, first) = subscribe(paths, session.as_deref())?;
    let (tx, rx) = mpsc::channel();
    let mut terminal = ratatui::try_init().context("cannot take over the terminal")?;
    let _ = tx.send(Input::Connected { pid });
    let _ = tx.send(Input::Daemon(first));
    // The daemon's pid, for its uptime; a new daemon has a new one.
    let daemon = Arc::new(AtomicU32::new(pid));
    spawn_input(tx.clone());
    spawn_subscription(
        tx.clone(),
        paths.clone(),
        session,
        responses,
        daemon.clone(),
    );
    spawn_host(tx.clone(), daemon);
    let result = event_loop(&mut app, &mut terminal, &rx, &tx, paths);
    ratatui::restore();
    if let Some(farewell) = app.farewell.take() {
        println!("{farewell}");
    }
    result
}

fn event_loop(
    app: &mut App,
    terminal: &mut ratatui::DefaultTerminal,
    rx: &Receiver<Input>,
    tx: &Sender<Input>,
    paths: &Paths,
) -> Result<()> {
    // How soon the screen must show what changed: FRAME, DATA_FRAME or never.
    let mut due: Option<Duration> = Some(Duration::ZERO);
    let mut last_draw = Instant::now() - DATA_FRAME;
    loop {
        if due.is_some_and(|d| last_draw.elapsed() >= d) {
            terminal.draw(|frame| super::views::draw(frame, app))?;
            last_draw = Instant::now();
            due = None;
        }
        let wait = match due {
            Some(d) => d.saturating_sub(last_draw.elapsed()),
            None => Duration::from_secs(3600),
        };
        let input = match rx.recv_timeout(wait) {
            Ok(input) => input,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        // Everything already waiting is taken in before the next frame.
        for input in std::iter::once(input).chain(rx.try_iter()) {
            let mut urgency = match &input {
                Input::Host(stats) if *stats == app.host => None,
                Input::Host(_) | Input::Daemon(_) => Some(DATA_FRAME),
                _ => Some(FRAME),
            };
            let notice = app.notice.clone();
            let effects = app.handle(input);
            // A worker's event that settles a request is news the user waits for.
            if app.notice != notice {
                urgency = Some(FRAME);
            }
            due = match (due, urgency) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            for effect in effects {
                match effect {
                    Effect::Quit => return Ok(()),
                    Effect::Send { id, request } => {
                        spawn_request(tx.clone(), paths.clone(), id, request)
                    }
                }
            }
        }
    }
}

/// Keys and resizes. A terminal that went away (the SSH connection dropped) ends the
/// dashboard as `q` does.
fn spawn_input(tx: Sender<Input>) {
    thread::spawn(move || {
        loop {
            let input = match event::read() {
                Ok(TermEvent::Key(key)) if key.kind != KeyEventKind::Release => Input::Key(key),
                Ok(TermEvent::Resize(..)) => Input::Resize,
                Ok(_) => continue,
                Err(_) => Input::Hangup,
            };
            let hangup = matches!(input, Input::Hangup);
            if tx.send(input).is_err() || hangup {
                return;
            }
        }
    });
}

/// Forwards the subscription; when it ends, says so and subscribes again until it works.
fn spawn_subscription(
    tx: Sender<Input>,
    paths: Paths,
    session: Option<String>,
    first: Responses,
    daemon: Arc<AtomicU32>,
) {
    thread::spawn(move || {
        let mut responses = Some(first);
        loop {
            if let Some(stream) = responses.take() {
                for response in stream {
                    let input = match response {
                        Ok(response) => Input::Daemon(response),
                        Err(e) => Input::Lost(e.to_string()),
                    };
                    if tx.send(input).is_err() {
                        return;
                    }
                }
                if tx
                    .send(Input::Lost("the daemon closed the connection".into()))
                    .is_err()
                {
                    return;
                }
            }
            thread::sleep(RECONNECT_EVERY);
            match subscribe(&paths, session.as_deref()) {
                Ok((pid, stream, first)) => {
                    daemon.store(pid, Ordering::Relaxed);
                    let sent = tx
                        .send(Input::Connected { pid })
                        .and_then(|()| tx.send(Input::Daemon(first)));
                    if sent.is_err() {
                        return;
                    }
                    responses = Some(stream);
                }
                Err(e) => {
                    if tx.send(Input::Lost(format!("{e:#}"))).is_err() {
                        return;
                    }
                }
            }
        }
    });
}

fn spawn_host(tx: Sender<Input>, daemon: Arc<AtomicU32>) {
    thread::spawn(move || {
        let mut sampler = HostSampler::new();
        loop {
            let pid = daemon.load(Ordering::Relaxed);
            if tx.send(Input::Host(sampler.sample(Some(pid)))).is_err() {
                return;
            }
            thread::sleep(HOST_EVERY);
        }
    });
}

/// One request on its own connection; the answer comes back as [`Input::Reply`].
fn spawn_request(tx: Sender<Input>, paths: Paths, id: u64, request: Request) {
    thread::spawn(move || {
        let answer = Client::connect(&paths)
            .and_then(|mut client| match request {
                Request::Shutdown => client.request_patiently(&request),
                _ => client.request(&request),
            })
            .map_err(|e| e.to_string());
        let _ = tx.send(Input::Reply { id, answer });
    });
}
