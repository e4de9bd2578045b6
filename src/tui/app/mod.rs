//! The dashboard's state and how inputs change it: keys become requests to the daemon, the
//! daemon's messages update the board, and replies and worker events settle what was asked.
//! No I/O here: the runtime carries out the [`Effect`]s. This file is the state and its
//! navigation; [`requests`] sends what keys ask of the daemon, [`pending`] settles it.

mod pending;
mod requests;

use pending::Pending;
use requests::ended;

use std::collections::BTreeSet;

use crossterm::event::KeyEvent;

use super::board::{Board, Change};
use super::keys::{self, Action, Place};
use super::theme::{ColorDepth, Role, Theme, Themes};
use crate::protocol::Comparison;
use crate::protocol::{Request, Response};
use crate::run::{EventKind, RunStatus};

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

    fn say(&mut self, text: impl Into<String>, role: Role) {
        self.notice = Some(Notice {
            text: text.into(),
            role,
        });
    }
}
