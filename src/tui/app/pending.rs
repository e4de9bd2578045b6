//! Requests in flight: what each waits for, and when the screen calls it done. The daemon's
//! reply only accepts a request; the worker's event (or its state) carries it out.

use super::App;
use crate::run::{Event, EventKind, RunStatus};
use crate::tui::theme::Role;

/// What a request waits for before the screen calls it done.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Expect {
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
pub(super) struct Pending {
    pub(super) id: u64,
    pub(super) run: String,
    pub(super) expect: Expect,
    /// The daemon accepted it; now the worker must act.
    pub(super) accepted: bool,
}

impl App {
    /// Whether a request on this group of this run is still in flight.
    pub fn group_pending(&self, run: &str, group: &str) -> bool {
        self.pending.iter().any(|p| {
            p.run == run
                && matches!(&p.expect, Expect::Freeze(g) | Expect::Unfreeze(g) if g.iter().any(|x| x == group))
        })
    }

    /// A worker's event may be what a pending request waited for.
    pub(super) fn worker_event(&mut self, run: &str, event: &Event) {
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
    pub(super) fn settle_by_state(&mut self) {
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
}

/// What a request asked, in words.
pub(super) fn describe(expect: &Expect) -> String {
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
