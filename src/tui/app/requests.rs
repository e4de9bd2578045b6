//! Keys that ask the daemon for something: the request, what it waits for, and the reply.

use std::collections::BTreeSet;

use super::pending::{Expect, Pending, describe};
use super::{App, Confirm, Effect};
use crate::protocol::{Comparison, Control, Request, Response};
use crate::run::RunStatus;
use crate::tui::keys::Action;
use crate::tui::theme::Role;

impl App {
    /// A control request for the selected run.
    pub(super) fn control(&mut self, action: Action) -> Vec<Effect> {
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

    pub(super) fn confirmed(&mut self, what: Confirm) -> Vec<Effect> {
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

    pub(super) fn send(&mut self, run: String, expect: Expect, request: Request) -> Vec<Effect> {
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

    pub(super) fn request_comparisons(&mut self) -> Vec<Effect> {
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

    pub(super) fn reply(&mut self, id: u64, answer: Result<Response, String>) -> Vec<Effect> {
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

    pub(super) fn store_comparison(&mut self, session: String, result: Result<Comparison, String>) {
        match self.comparisons.iter_mut().find(|(s, _)| *s == session) {
            Some(slot) => slot.1 = result,
            None => self.comparisons.push((session, result)),
        }
    }
}

/// What `r` can do for a run that is not training, as a footer's tail (`; r resumes it ...`).
pub(super) fn ended(status: RunStatus) -> &'static str {
    if status.is_resumable() {
        "; r resumes it from its last checkpoint"
    } else if status.is_pending() {
        "; it has not started"
    } else {
        ""
    }
}
