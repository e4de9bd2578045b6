//! The key map: every key the dashboard answers, what it does and where it applies. Keys are
//! dispatched from this table and the help popup and the footer are drawn from it, so what
//! the screen says a key does is what it does.

use crate::run::RunStatus;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Up,
    Down,
    SwitchPane,
    Detail,
    Back,
    ToggleFreeze,
    FreezeAllButHead,
    UnfreezeAll,
    PauseResume,
    Stop,
    Remove,
    Checkpoint,
    ResumeRun,
    LrUp,
    LrDown,
    Compare,
    Mark,
    CompareMetric,
    LogScale,
    NextTheme,
    Help,
    Detach,
    StopDaemon,
}

/// Where the cursor is, for keys that apply only there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The runs list of the Runs view.
    Runs,
    /// The layer groups pane of the Runs view.
    Groups,
    /// Run detail (its groups pane has the cursor).
    Detail,
    Compare,
}

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Everywhere,
    /// Wherever a run is selected (Runs view and Run detail).
    Run,
    Groups,
    Detail,
    Compare,
}

impl Scope {
    fn covers(self, place: Place) -> bool {
        match self {
            Scope::Everywhere => true,
            Scope::Run => place != Place::Compare,
            Scope::Groups => matches!(place, Place::Groups | Place::Detail),
            Scope::Detail => place == Place::Detail,
            Scope::Compare => place == Place::Compare,
        }
    }
}

/// One line of the key map.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub keys: &'static [KeyCode],
    /// The keys as the help shows them.
    pub label: &'static str,
    pub action: Action,
    /// What it does, for the help popup.
    pub help: &'static str,
    /// A word or two for the footer.
    pub short: &'static str,
    pub scope: Scope,
}

const fn bind(
    keys: &'static [KeyCode],
    label: &'static str,
    action: Action,
    scope: Scope,
    short: &'static str,
    help: &'static str,
) -> Binding {
    Binding {
        keys,
        label,
        action,
        help,
        short,
        scope,
    }
}

use KeyCode::{BackTab, Char, Down, Enter, Esc, Tab, Up};
use Scope::{Everywhere, Groups, Run};

/// Every binding, in the order the help lists them.
#[rustfmt::skip]
pub const KEY_MAP: &[Binding] = &[
    bind(&[Char('j'), Down], "j/k ↑/↓", Action::Down, Everywhere, "select", "select the next run (or group)"),
    bind(&[Char('k'), Up], "", Action::Up, Everywhere, "", "select the previous run (or group)"),
    bind(&[Tab, BackTab], "Tab", Action::SwitchPane, Run, "runs/groups", "switch between the runs and the layer groups"),
    bind(&[Enter], "Enter", Action::Detail, Run, "detail", "the selected run in detail"),
    bind(&[Esc, Char('h')], "Esc", Action::Back, Everywhere, "back", "back to the runs (or close a popup)"),
    bind(&[Char(' '), Char('f')], "space/f", Action::ToggleFreeze, Groups, "freeze/thaw", "freeze or unfreeze the selected group"),
    bind(&[Char('F')], "F", Action::FreezeAllButHead, Run, "freeze all but head", "freeze every group but the head"),
    bind(&[Char('U')], "U", Action::UnfreezeAll, Run, "unfreeze all", "unfreeze every group"),
    bind(&[Char('p')], "p", Action::PauseResume, Run, "pause", "pause or resume the run"),
    bind(&[Char('s')], "s", Action::Stop, Run, "stop", "checkpoint and stop the run (asks)"),
    bind(&[Char('c')], "c", Action::Checkpoint, Run, "checkpoint", "write a checkpoint now"),
    bind(&[Char('r')], "r", Action::ResumeRun, Run, "resume", "resume a stopped, failed or interrupted run"),
    bind(&[Char('D')], "D", Action::Remove, Run, "", "remove a run that is not training, with its files (asks)"),
    bind(&[Char('+'), Char('=')], "+/-", Action::LrUp, Run, "lr x2, ÷2", "learning rate x2 / ÷2"),
    bind(&[Char('-'), Char('_')], "", Action::LrDown, Run, "", "learning rate ÷2"),
    bind(&[Char('m')], "m", Action::Mark, Scope::Run, "mark", "mark the run for comparison (none marked: its session)"),
    bind(&[Char('v')], "v", Action::Compare, Everywhere, "compare", "compare the marked runs (or the session) on one chart"),
    bind(&[Char('a')], "a", Action::CompareMetric, Scope::Compare, "loss/acc", "compare validation loss or accuracy"),
    bind(&[Char('l')], "l", Action::LogScale, Scope::Detail, "log scale", "loss chart on a log scale or not"),
    bind(&[Char('t')], "t", Action::NextTheme, Everywhere, "theme", "next theme"),
    bind(&[Char('?')], "?", Action::Help, Everywhere, "help", "this help"),
    bind(&[Char('q')], "q", Action::Detach, Everywhere, "detach", "detach (training goes on)"),
    bind(&[Char('Q')], "Q", Action::StopDaemon, Everywhere, "stop daemon", "checkpoint every run and stop the daemon (asks)"),
];

/// The action of a key press at `place`, if it has one there.
pub fn action(key: KeyEvent, place: Place) -> Option<Action> {
    if key
        .modifiers
        .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
    {
        // Ctrl-C detaches like q: the habit of every terminal program.
        return (key.code == Char('c') && key.modifiers == KeyModifiers::CONTROL)
            .then_some(Action::Detach);
    }
    KEY_MAP
        .iter()
        .find(|b| b.scope.covers(place) && b.keys.contains(&key.code))
        .map(|b| b.action)
}

/// The bindings that apply at `place` and have a footer word, most specific first.
///
/// Only what does something for the selected run (in `status`): a finished run offers no
/// pause, a stopped one offers `r`; `Esc` where it leads back, first.
pub fn footer(place: Place, status: Option<RunStatus>) -> Vec<&'static Binding> {
    let live = status.is_some_and(RunStatus::is_live);
    let useful = |action: Action| match action {
        Action::Back => place != Place::Runs,
        Action::SwitchPane | Action::Detail => place != Place::Detail,
        Action::ToggleFreeze
        | Action::FreezeAllButHead
        | Action::UnfreezeAll
        | Action::PauseResume
        | Action::Checkpoint
        | Action::LrUp => live,
        Action::Stop => live || status.is_some_and(RunStatus::is_pending),
        Action::ResumeRun => status.is_some_and(RunStatus::is_resumable),
        _ => true,
    };
    let mut here: Vec<&Binding> = KEY_MAP
        .iter()
        .filter(|b| !b.short.is_empty() && b.scope.covers(place) && useful(b.action))
        .collect();
    here.sort_by_key(|b| match (b.action, b.scope) {
        (Action::Back, _) => 0,
        (_, Everywhere) => 2,
        _ => 1,
    });
    here
}

/// The help popup's lines: keys and what they do, grouped by where they apply.
pub fn help_lines() -> Vec<(String, &'static str)> {
    let mut lines = Vec::new();
    for b in KEY_MAP.iter().filter(|b| !b.label.is_empty()) {
        // A binding whose label covers the next one ("+/-", "j/k") speaks for both.
        let help = match b.action {
            Action::Down => "select the next / previous run (or group)",
            Action::LrUp => "learning rate x2 / ÷2",
            _ => b.help,
        };
        let label = match b.scope {
            Scope::Groups => format!("{} (groups)", b.label),
            Scope::Detail => format!("{} (detail)", b.label),
            Scope::Compare => format!("{} (compare)", b.label),
            _ => b.label.to_string(),
        };
        lines.push((label, help));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn the_footer_offers_what_does_something_for_the_selected_run() {
        let actions = |place, status| -> Vec<Action> {
            footer(place, status).iter().map(|b| b.action).collect()
        };
        let finished = actions(Place::Runs, Some(RunStatus::Finished));
        assert!(!finished.contains(&Action::PauseResume), "{finished:?}");
        assert!(!finished.contains(&Action::ResumeRun), "{finished:?}");
        assert!(!finished.contains(&Action::Back), "Esc does nothing there");
        let stopped = actions(Place::Runs, Some(RunStatus::Stopped));
        assert!(stopped.contains(&Action::ResumeRun), "{stopped:?}");
        let running = actions(Place::Detail, Some(RunStatus::Running));
        assert_eq!(running.first(), Some(&Action::Back));
        assert!(running.contains(&Action::ToggleFreeze) && running.contains(&Action::PauseResume));
        assert!(!running.contains(&Action::Detail) && !running.contains(&Action::SwitchPane));
    }

    #[test]
    fn every_binding_is_reachable_where_it_applies() {
        for b in KEY_MAP {
            let place = match b.scope {
                Everywhere | Run => Place::Runs,
                Groups => Place::Groups,
                Scope::Detail => Place::Detail,
                Scope::Compare => Place::Compare,
            };
            for &code in b.keys {
                assert_eq!(action(press(code), place), Some(b.action), "{code:?}");
            }
        }
    }

    #[test]
    fn keys_do_nothing_where_they_do_not_apply() {
        assert_eq!(action(press(Char('f')), Place::Runs), None);
        assert_eq!(action(press(Char('a')), Place::Runs), None);
        assert_eq!(action(press(Char('p')), Place::Compare), None);
        assert_eq!(action(press(Char('x')), Place::Runs), None);
    }

    #[test]
    fn no_key_is_bound_twice_in_one_place() {
        for place in [Place::Runs, Place::Groups, Place::Detail, Place::Compare] {
            let mut seen = Vec::new();
            for b in KEY_MAP.iter().filter(|b| b.scope.covers(place)) {
                for code in b.keys {
                    assert!(!seen.contains(code), "{code:?} twice at {place:?}");
                    seen.push(*code);
                }
            }
        }
    }

    #[test]
    fn the_help_names_every_action() {
        let help = help_lines();
        for b in KEY_MAP.iter().filter(|b| !b.label.is_empty()) {
            assert!(help.iter().any(|(label, _)| label.starts_with(b.label)));
        }
    }
}
