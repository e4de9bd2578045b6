//! The dashboard's state and how inputs change it: keys become requests to the daemon, the
//! daemon's messages update the board, and replies and worker events settle what was asked.
//! No I/O here: the runtime carries out the [`Effect`]s.

use std::collections::BTreeSet;

use crossterm::event::KeyEvent;

use super::board::{Board, Change};
use super::keys::{self, Action, Place};
use super::theme::{ColorDepth, Role, Theme, Themes};
use crate::protocol::Comparison;
use crate::protocol::{Control, Request, Response};
use crate::run::{Event, EventKind, RunStatus};

/// Which view fills the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Runs,
    Detail,
    Compare,
}

/// Which pane of the Runs view has the cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Runs,
    Groups,
}

/// What the compare view plots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Loss,
    Accuracy,
}

/// A question that needs a yes before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirm {
    StopRun(String),
    RemoveRun(String),
    StopDaemon,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Popup {
    Help,
    Confirm(Confirm),
    /// What went wrong before the dashboard started (a bad theme file, say), one per line.
    Messages(Vec<String>),
}

/// The state of the link to the daemon.
#[derive(Debug, Clone, PartialEq)]
pub enum Link {
    Connecting,
    Up { pid: u32 },
    Down { reason: String },
}

/// A line for the footer: what was asked, what came of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub text: String,
    pub role: Role,
}

/// What the host looks like, sampled by the runtime (never while drawing).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostStats {
    pub hostname: String,
    pub cores: usize,
    /// Busy share of all cores, in percent.
    pub cpu_percent: Option<u32>,
    /// How long the daemon has run, in seconds.
    pub daemon_uptime: Option<u64>,
}

/// What a request waits for before the screen calls it done.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    Freeze(Vec<String>),
    Unfreeze(Vec<String>),
    Pause,
    Resume,
    Restart,
    Stop,
    Checkpoint,
    Lr,
    Shutdown,
    Remove,
}

/// A request sent and not yet carried out.
#[derive(Debug, Clone)]
struct Pending {
    id: u64,
    run: String,
    expect: Expect,
    /// The daemon accepted it; now the worker must act.
    accepted: bool,
}

/// Something for the runtime to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Send { id: u64, request: Request },
    Quit,
}

/// One input to the dashboard.
#[derive(Debug)]
pub enum Input {
    Key(KeyEvent),
    Resize,
    Connected {
        pid: u32,
    },
    Daemon(Response),
    Lost(String),
    Reply {
        id: u64,
        answer: Result<Response, String>,
    },
    Host(HostStats),
    /// The terminal went away (a dropped SSH connection): the same as detaching.
    Hangup,
}

/// The dashboard.
pub struct App {
    pub board: Board,
    pub view: View,
    pub pane: Pane,
    /// Index into `board.runs`.
    pub selected: usize,
    /// Index into the selected run's groups.
    pub group: usize,
    /// Runs marked for comparison (`session/run`).
    pub marked: BTreeSet<String>,
    pub popup: Option<Popup>,
    pub notice: Option<Notice>,
    /// Said on the terminal once the dashboard has given it back: why it ended.
    pub farewell: Option<String>,
    pub link: Link,
    pub host: HostStats,
    pub log_scale: bool,
    pub metric: Metric,
    /// The compare view's tables, by session, as the daemon computed them.
    pub comparisons: Vec<(String, Result<Comparison, String>)>,
    pub themes: Themes,
    pub theme: String,
    pub depth: ColorDepth,
    pub ascii: bool,
    pending: Vec<Pending>,
    /// Compare requests in flight: id and session.
    comparing: Vec<(u64, String)>,
    next_id: u64,
}

impl App {
    /// Leaves the dashboard; the daemon and its runs go on.
    fn detach(&mut self) -> Vec<Effect> {
        let training = self
            .board
            .runs
            .iter()
            .filter(|r| {
                use RunStatus::*;
                matches!(
                    r.info.status,
                    Running | Checkpointing | Paused | Queued | Waiting
                )
            })
            .count();
        self.farewell = Some(match training {
            0 => {
                "detached; the daemon stays up with nothing to train (`thaw down` stops it)".into()
            }
            n => format!(
                "detached; {n} unfinished run(s) go on in the daemon: `thaw attach` brings the dashboard back"
            ),
        });
        vec![Effect::Quit]
    }

    pub fn new(themes: Themes, theme: String, depth: ColorDepth, ascii: bool) -> Self {
        Self {
            board: Board::default(),
            view: View::Runs,
            pane: Pane::Runs,
            selected: 0,
            group: 0,
            marked: BTreeSet::new(),
            popup: None,
            notice: None,
            farewell: None,
            link: Link::Connecting,
            host: HostStats::default(),
            log_scale: false,
            metric: Metric::Accuracy,
            comparisons: Vec::new(),
            themes,
            theme,
            depth,
            ascii,
            pending: Vec::new(),
            comparing: Vec::new(),
            next_id: 1,
        }
    }

    /// The theme in use.
    pub fn theme(&self) -> &Theme {
        match self.themes.get(&self.theme) {
            Ok(theme) => theme,
            Err(_) => self.themes.get("dark").expect("dark is built in"),
        }
    }

    /// Where the cursor is, for the keys.
    pub fn place(&self) -> Place {
        match (self.view, self.pane) {
            (View::Detail, _) => Place::Detail,
            (View::Compare, _) => Place::Compare,
            (View::Runs, Pane::Groups) => Place::Groups,
            (View::Runs, Pane::Runs) => Place::Runs,
        }
    }

    /// The selected run, if there are runs.
    pub fn run(&self) -> Option<&super::board::RunView> {
        self.board
            .runs
            .get(self.selected.min(self.board.runs.len().saturating_sub(1)))
    }

    /// Whether a request on this group of this run is still in flight.
    pub fn group_pending(&self, run: &str, group: &str) -> bool {
        self.pending.iter().any(|p| {
            p.run == run
                && matches!(&p.expect, Expect::Freeze(g) | Expect::Unfreeze(g) if g.iter().any(|x| x == group))
        })
    }

    /// The runs the compare view shows: the marked ones, else the selected run's session.
    pub fn compared(&self) -> Vec<&super::board::RunView> {
        if !self.marked.is_empty() {
            return self
                .board
                .runs
                .iter()
                .filter(|r| self.marked.contains(&r.full_name()))
                .collect();
        }
        let Some(session) = self.run().map(|r| r.info.session.clone()) else {
            return Vec::new();
        };
        self.board
            .runs
            .iter()
            .filter(|r| r.info.session == session)
            .collect()
    }

    /// Takes in one input; returns what the runtime must do.
    pub fn handle(&mut self, input: Input) -> Vec<Effect> {
        match input {
            Input::Key(key) => self.key(key),
            Input::Resize => Vec::new(),
            Input::Connected { pid } => {
                self.link = Link::Up { pid };
                // What could not be sent while the daemon was away is old news now.
                if self
                    .notice
                    .as_ref()
                    .is_some_and(|n| n.text.starts_with("not sent: "))
                {
                    self.notice = None;
                }
                Vec::new()
            }
            Input::Lost(reason) => {
                self.board.disconnected();
                self.link = Link::Down { reason };
                Vec::new()
            }
            Input::Daemon(response) => self.daemon(response),
            Input::Reply { id, answer } => self.reply(id, answer),
            Input::Host(stats) => {
                self.host = stats;
                Vec::new()
            }
            Input::Hangup => vec![Effect::Quit],
        }
    }

    fn daemon(&mut self, response: Response) -> Vec<Effect> {
        let change = self.board.apply(response);
        self.clamp();
        let mut effects = Vec::new();
        if let Change::Event { run, event } = change {
            self.worker_event(&run, &event);
            if event.kind == EventKind::Validation && self.view == View::Compare {
                effects.extend(self.request_comparisons());
            }
        }
        self.settle_by_state();
        effects
    }

    fn clamp(&mut self) {
        self.selected = self.selected.min(self.board.runs.len().saturating_sub(1));
        let groups = self.run().map_or(0, |r| r.info.groups.len());
        self.group = self.group.min(groups.saturating_sub(1));
    }

    fn key(&mut self, key: KeyEvent) -> Vec<Effect> {
        use crossterm::event::{KeyCode, KeyModifiers};
        // A terminal sends Alt+x as Esc then x, so Esc and a key typed quickly (or sent
        // together over a slow link) read as Alt+x. No key of thaw's takes Alt: they are the
        // two keys they were.
        if key.modifiers.contains(KeyModifiers::ALT)
            && !key.modifiers.contains(KeyModifiers::CONTROL)
            && matches!(key.code, KeyCode::Char(_))
        {
            let mut effects = self.key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
            effects.extend(self.key(KeyEvent::new(key.code, key.modifiers - KeyModifiers::ALT)));
            return effects;
        }
        if let Some(popup) = self.popup.clone() {
            return match popup {
                Popup::Help | Popup::Messages(_) => {
                    // Any key closes the help; q still detaches.
                    self.popup = None;
                    match keys::action(key, self.place()) {
                        Some(Action::Detach) => self.detach(),
                        _ => Vec::new(),
                    }
                }
                Popup::Confirm(what) => {
                    self.popup = None;
                    match key.code {
                        KeyCode::Char('y' | 'Y') | KeyCode::Enter => self.confirmed(what),
                        _ => {
                            self.say("cancelled", Role::Dim);
                            Vec::new()
                        }
                    }
                }
            };
        }
        match keys::action(key, self.place()) {
            Some(action) => self.act(action),
            None => Vec::new(),
        }
    }

    fn act(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::Up | Action::Down => {
                self.step(if action == Action::Up { -1 } else { 1 });
                Vec::new()
            }
            Action::SwitchPane => {
                if self.view == View::Runs {
                    self.pane = match self.pane {
                        Pane::Runs => Pane::Groups,
                        Pane::Groups => Pane::Runs,
                    };
                }
                Vec::new()
            }
            Action::Detail => {
                if self.run().is_some() {
                    self.view = View::Detail;
                }
                Vec::new()
            }
            Action::Back => {
                match (self.view, self.pane) {
                    (View::Runs, _) => self.pane = Pane::Runs,
                    _ => self.view = View::Runs,
                }
                Vec::new()
            }
            Action::Compare => {
                if self.view == View::Compare {
                    self.view = View::Runs;
                    return Vec::new();
                }
                self.view = View::Compare;
                self.request_comparisons()
            }
            Action::Mark => {
                if let Some(name) = self.run().map(|r| r.full_name())
                    && !self.marked.remove(&name)
                {
                    self.marked.insert(name);
                }
                Vec::new()
            }
            Action::CompareMetric => {
                self.metric = match self.metric {
                    Metric::Loss => Metric::Accuracy,
                    Metric::Accuracy => Metric::Loss,
                };
                Vec::new()
            }
            Action::LogScale => {
                self.log_scale = !self.log_scale;
                Vec::new()
            }
            Action::NextTheme => {
                self.theme = self.themes.next_after(&self.theme).to_string();
                self.say(format!("theme {}", self.theme), Role::Dim);
                Vec::new()
            }
            Action::Help => {
                self.popup = Some(Popup::Help);
                Vec::new()
            }
            Action::Detach => self.detach(),
            Action::StopDaemon => {
                self.popup = Some(Popup::Confirm(Confirm::StopDaemon));
                Vec::new()
            }
            Action::Stop => {
                let Some(run) = self.run() else {
                    return Vec::new();
                };
                let (name, status) = (run.full_name(), run.info.status);
                match status.has_ended() {
                    // Asking first would only end in the daemon's refusal.
                    true => self.say(
                        format!(
                            "{name} is {}: nothing to stop{}",
                            status.word(),
                            ended(status)
                        ),
                        Role::Warning,
                    ),
                    false => self.popup = Some(Popup::Confirm(Confirm::StopRun(name))),
                }
                Vec::new()
            }
            Action::Remove => {
                let Some(run) = self.run() else {
                    return Vec::new();
                };
                let (name, status) = (run.full_name(), run.info.status);
                match status {
                    // Asking first would only end in the daemon's refusal.
                    status if status.is_stepping() => self.say(
                        format!("{name} is running: stop it first (s)"),
                        Role::Warning,
                    ),
                    RunStatus::Paused => self.say(
                        format!("{name} is paused: stop it first (s)"),
                        Role::Warning,
                    ),
                    _ => self.popup = Some(Popup::Confirm(Confirm::RemoveRun(name))),
                }
                Vec::new()
            }
            _ => self.control(action),
        }
    }

    fn step(&mut self, by: isize) {
        let on_groups = self.view == View::Detail || self.pane == Pane::Groups;
        let groups = self.run().map_or(0, |r| r.info.groups.len());
        let (index, len) = match on_groups {
            true => (&mut self.group, groups),
            false => (&mut self.selected, self.board.runs.len()),
        };
        if len > 0 {
            *index = (*index as isize + by).clamp(0, len as isize - 1) as usize;
        }
        if !on_groups {
            self.clamp();
        }
    }

    /// A control request for the selected run.
    fn control(&mut self, action: Action) -> Vec<Effect> {
        let Some(run) = self.run() else {
            self.say("no run selected", Role::Warning);
            return Vec::new();
        };
        let name = run.full_name();
        let info = &run.info;
        let frozen: Vec<String> = info
            .groups
            .iter()
            .filter(|g| g.frozen)
            .map(|g| g.name.clone())
            .collect();
        let (control, expect) = match action {
            Action::ToggleFreeze => {
                let Some(group) = info.groups.get(self.group) else {
                    return Vec::new();
                };
                let groups = vec![group.name.clone()];
                match group.frozen {
                    true => (
                        Control::Unfreeze {
                            groups: groups.clone(),
                        },
                        Expect::Unfreeze(groups),
                    ),
                    false => (
                        Control::Freeze {
                            groups: groups.clone(),
                        },
                        Expect::Freeze(groups),
                    ),
                }
            }
            Action::FreezeAllButHead => {
                let body = info.groups.len().saturating_sub(1);
                let groups: Vec<String> = info.groups[..body]
                    .iter()
                    .filter(|g| !g.frozen)
                    .map(|g| g.name.clone())
                    .collect();
                if groups.is_empty() {
                    self.say(
                        format!("{name}: every group but the head is frozen already"),
                        Role::Dim,
                    );
                    return Vec::new();
                }
                (
                    Control::Freeze {
                        groups: groups.clone(),
                    },
                    Expect::Freeze(groups),
                )
            }
            Action::UnfreezeAll => {
                if frozen.is_empty() {
                    self.say(format!("{name}: no group is frozen"), Role::Dim);
                    return Vec::new();
                }
                (
                    Control::Unfreeze {
                        groups: frozen.clone(),
                    },
                    Expect::Unfreeze(frozen),
                )
            }
            Action::PauseResume => match info.status {
                RunStatus::Paused => (Control::Resume, Expect::Resume),
                status if status.is_stepping() => (Control::Pause, Expect::Pause),
                other => {
                    self.say(
                        format!(
                            "{name} is {}: nothing to pause{}",
                            other.word(),
                            ended(other)
                        ),
                        Role::Warning,
                    );
                    return Vec::new();
                }
            },
            Action::ResumeRun => match info.status {
                RunStatus::Paused => (Control::Resume, Expect::Resume),
                _ => (Control::Resume, Expect::Restart),
            },
            Action::Checkpoint => (Control::Checkpoint, Expect::Checkpoint),
            Action::LrUp => (Control::LrScale(2.0), Expect::Lr),
            Action::LrDown => (Control::LrScale(0.5), Expect::Lr),
            _ => return Vec::new(),
        };
        let request = Request::Control {
            run: name.clone(),
            control,
        };
        self.send(name, expect, request)
    }

    fn confirmed(&mut self, what: Confirm) -> Vec<Effect> {
        match what {
            Confirm::StopRun(run) => {
                let request = Request::Control {
                    run: run.clone(),
                    control: Control::Stop,
                };
                self.send(run, Expect::Stop, request)
            }
            Confirm::RemoveRun(run) => {
                let request = Request::Remove {
                    runs: vec![run.clone()],
                    sessions: Vec::new(),
                };
                self.send(run, Expect::Remove, request)
            }
            Confirm::StopDaemon => self.send(String::new(), Expect::Shutdown, Request::Shutdown),
        }
    }

    fn send(&mut self, run: String, expect: Expect, request: Request) -> Vec<Effect> {
        let id = self.next_id;
        self.next_id += 1;
        let what = describe(&expect);
        let text = match run.is_empty() {
            true => format!("{what}: sent"),
            false => format!("{run}: {what}: sent"),
        };
        self.say(text, Role::Pending);
        self.pending.push(Pending {
            id,
            run,
            expect,
            accepted: false,
        });
        vec![Effect::Send { id, request }]
    }

    fn request_comparisons(&mut self) -> Vec<Effect> {
        let sessions: BTreeSet<String> = self
            .compared()
            .iter()
            .map(|r| r.info.session.clone())
            .collect();
        sessions
            .into_iter()
            .map(|session| {
                let id = self.next_id;
                self.next_id += 1;
                self.comparing.push((id, session.clone()));
                Effect::Send {
                    id,
                    request: Request::Compare {
                        session,
                        target: None,
                    },
                }
            })
            .collect()
    }

    fn reply(&mut self, id: u64, answer: Result<Response, String>) -> Vec<Effect> {
        if let Some(i) = self.comparing.iter().position(|(c, _)| *c == id) {
            let (_, session) = self.comparing.remove(i);
            let result = match answer {
                Ok(Response::Compare { comparison, .. }) => Ok(comparison),
                Ok(Response::Error { message }) | Err(message) => Err(message),
                Ok(other) => Err(format!("unexpected answer: {other:?}")),
            };
            self.store_comparison(session, result);
            return Vec::new();
        }
        let index = self.pending.iter().position(|p| p.id == id);
        match (answer, index) {
            (Ok(Response::Done { message }), Some(i)) => {
                if self.pending[i].expect == Expect::Shutdown {
                    self.pending.remove(i);
                    // What `thaw down` says: which runs stopped, resumable.
                    self.farewell = Some(message);
                    return vec![Effect::Quit];
                }
                if self.pending[i].expect == Expect::Remove {
                    // Done by the daemon itself: no worker to wait for.
                    self.pending.remove(i);
                    self.say(message, Role::Ok);
                    return Vec::new();
                }
                self.pending[i].accepted = true;
                self.say(format!("{message} (waiting for the worker)"), Role::Pending);
                self.settle_by_state();
                Vec::new()
            }
            (Ok(Response::Error { message }), Some(i)) => {
                let run = self.pending.remove(i).run;
                let text = match run.is_empty() {
                    true => format!("refused: {message}"),
                    false => format!("{run}: refused: {message}"),
                };
                self.say(text, Role::Error);
                Vec::new()
            }
            (Err(message), Some(i)) => {
                self.pending.remove(i);
                self.say(format!("not sent: {message}"), Role::Error);
                Vec::new()
            }
            (Ok(Response::Error { message }) | Err(message), None) => {
                self.say(message, Role::Error);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn store_comparison(&mut self, session: String, result: Result<Comparison, String>) {
        match self.comparisons.iter_mut().find(|(s, _)| *s == session) {
            Some(slot) => slot.1 = result,
            None => self.comparisons.push((session, result)),
        }
    }

    /// A worker's event may be what a pending request waited for.
    fn worker_event(&mut self, run: &str, event: &Event) {
        let done = self
            .pending
            .iter()
            .position(|p| p.run == run && satisfies(&p.expect, event));
        match done {
            Some(i) => {
                self.pending.remove(i);
                self.say(format!("{run}: {}", event.message), Role::Ok);
            }
            None if event.kind.is_trouble() => {
                self.say(format!("{run}: {}", event.message), Role::Warning);
            }
            None => {}
        }
    }

    /// Requests whose effect the runs' state already shows (a group that was frozen already,
    /// say, for which the worker writes no event) are done.
    fn settle_by_state(&mut self) {
        let mut settled = Vec::new();
        for p in self.pending.iter().filter(|p| p.accepted) {
            let Some(run) = self.board.run(&p.run) else {
                continue;
            };
            let info = &run.info;
            let frozen = |g: &String| info.groups.iter().any(|x| &x.name == g && x.frozen);
            let met = match &p.expect {
                Expect::Freeze(groups) => groups.iter().all(frozen),
                Expect::Unfreeze(groups) => !groups.iter().any(frozen),
                Expect::Pause => info.status == RunStatus::Paused,
                Expect::Stop => info.status == RunStatus::Stopped,
                _ => false,
            };
            if met {
                settled.push((p.id, format!("{}: {} done", p.run, describe(&p.expect))));
            }
        }
        for (id, text) in settled {
            self.pending.retain(|p| p.id != id);
            self.say(text, Role::Ok);
        }
    }

    fn say(&mut self, text: impl Into<String>, role: Role) {
        self.notice = Some(Notice {
            text: text.into(),
            role,
        });
    }
}

/// What a request asked, in words.
fn describe(expect: &Expect) -> String {
    match expect {
        Expect::Freeze(groups) => format!("freeze {}", groups.join(", ")),
        Expect::Unfreeze(groups) => format!("unfreeze {}", groups.join(", ")),
        Expect::Pause => "pause".into(),
        Expect::Resume => "resume".into(),
        Expect::Restart => "resume from checkpoint".into(),
        Expect::Stop => "stop".into(),
        Expect::Checkpoint => "checkpoint".into(),
        Expect::Lr => "learning rate".into(),
        Expect::Shutdown => "stop the daemon".into(),
        Expect::Remove => "remove".into(),
    }
}

/// Whether a worker's event is the effect a request waited for.
fn satisfies(expect: &Expect, event: &Event) -> bool {
    match expect {
        Expect::Freeze(groups) => {
            event.kind == EventKind::Freeze && groups.iter().all(|g| event.groups.contains(g))
        }
        Expect::Unfreeze(groups) => {
            event.kind == EventKind::Unfreeze && groups.iter().all(|g| event.groups.contains(g))
        }
        Expect::Pause => event.kind == EventKind::Pause,
        Expect::Resume => event.kind == EventKind::Resume,
        Expect::Restart => matches!(event.kind, EventKind::Resumed | EventKind::Resume),
        Expect::Stop => event.kind == EventKind::Stop,
        Expect::Checkpoint => event.kind == EventKind::Checkpoint,
        Expect::Lr => event.kind == EventKind::Lr,
        Expect::Shutdown | Expect::Remove => false,
    }
}

/// What `r` can do for a run that is not training, as a footer's tail (`; r resumes it ...`).
fn ended(status: RunStatus) -> &'static str {
    if status.is_resumable() {
        "; r resumes it from its last checkpoint"
    } else if status.is_pending() {
        "; it has not started"
    } else {
        ""
    }
}
