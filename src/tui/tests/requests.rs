use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::fixture;
use crate::protocol::{Control, Request, Response};
use crate::tui::app::{App, Effect, Input, Popup, View};
use crate::tui::keys::{Action, KEY_MAP};
use crate::tui::theme::Role;

fn key(app: &mut App, code: KeyCode) -> Vec<Effect> {
    app.handle(Input::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn chars(app: &mut App, keys: &str) -> Vec<Effect> {
    keys.chars()
        .flat_map(|c| {
            let code = match c {
                '\t' => KeyCode::Tab,
                '\n' => KeyCode::Enter,
                c => KeyCode::Char(c),
            };
            key(app, code)
        })
        .collect()
}

/// The requests among the effects (the test's recording client).
fn requests(effects: &[Effect]) -> Vec<Request> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send { request, .. } => Some(request.clone()),
            Effect::Quit => None,
        })
        .collect()
}

fn control(run: &str, control: Control) -> Vec<Request> {
    vec![Request::Control {
        run: format!("demo/{run}"),
        control,
    }]
}

fn groups(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// What pressing `code` sends, in a fresh app, after `before` (selecting a run, a pane) —
/// for every key of every binding. A new action fails to compile here until it is tested.
#[test]
fn every_key_of_the_key_map_sends_its_request() {
    // Runs: 0 pretrain (finished), 1 scratch (running), 2 pretrained-frozen (running, body
    // frozen), 3 frozen-then-thawed (paused, stem and layer1 frozen), 4 late (queued).
    for binding in KEY_MAP {
        for &code in binding.keys {
            let mut app = fixture::app(false);
            let (before, expected): (&str, Vec<Request>) = match binding.action {
                Action::ToggleFreeze => (
                    "j\tj",
                    control(
                        "scratch",
                        Control::Freeze {
                            groups: groups(&["layer1"]),
                        },
                    ),
                ),
                Action::FreezeAllButHead => (
                    "j",
                    control(
                        "scratch",
                        Control::Freeze {
                            groups: groups(&["stem", "layer1", "layer2", "layer3", "layer4"]),
                        },
                    ),
                ),
                Action::UnfreezeAll => (
                    "jjj",
                    control(
                        "frozen-then-thawed",
                        Control::Unfreeze {
                            groups: groups(&["stem", "layer1"]),
                        },
                    ),
                ),
                Action::PauseResume => ("j", control("scratch", Control::Pause)),
                Action::Checkpoint => ("jj", control("pretrained-frozen", Control::Checkpoint)),
                Action::ResumeRun => ("jjj", control("frozen-then-thawed", Control::Resume)),
                Action::LrUp => ("j", control("scratch", Control::LrScale(2.0))),
                Action::LrDown => ("j", control("scratch", Control::LrScale(0.5))),
                Action::Compare => (
                    "",
                    vec![Request::Compare {
                        session: "demo".into(),
                        target: None,
                    }],
                ),
                // Asks first: nothing is sent until y.
                Action::Stop | Action::StopDaemon => ("j", vec![]),
                // pretrain, finished.
                Action::Remove => ("", vec![]),
                Action::Up
                | Action::Down
                | Action::SwitchPane
                | Action::Detail
                | Action::Back
                | Action::Mark
                | Action::CompareMetric
                | Action::LogScale
                | Action::NextTheme
                | Action::Help
                | Action::Detach => ("", vec![]),
            };
            let before = match binding.action {
                Action::CompareMetric => "v",
                Action::LogScale => "\n",
                _ => before,
            };
            chars(&mut app, before);
            let effects = key(&mut app, code);
            assert_eq!(
                requests(&effects),
                expected,
                "{:?} ({code:?})",
                binding.action
            );
            match binding.action {
                Action::Detach => assert_eq!(effects, vec![Effect::Quit]),
                Action::Stop | Action::StopDaemon | Action::Remove => {
                    assert!(matches!(app.popup, Some(Popup::Confirm(_))))
                }
                Action::Help => assert_eq!(app.popup, Some(Popup::Help)),
                _ => {}
            }
        }
    }
}

#[test]
fn stop_and_stopping_the_daemon_are_sent_only_after_yes() {
    let mut app = fixture::app(false);
    assert_eq!(requests(&chars(&mut app, "js")), vec![]);
    assert_eq!(
        requests(&chars(&mut app, "y")),
        control("scratch", Control::Stop)
    );
    assert_eq!(requests(&chars(&mut app, "sn")), vec![]);
    assert_eq!(
        app.notice.as_ref().map(|n| n.text.as_str()),
        Some("cancelled")
    );
    assert_eq!(requests(&chars(&mut app, "Q")), vec![]);
    let effects = key(&mut app, KeyCode::Enter);
    assert_eq!(requests(&effects), vec![Request::Shutdown]);
    // The dashboard leaves once the daemon has stopped.
    let Some(Effect::Send { id, .. }) = effects.first() else {
        unreachable!()
    };
    let done = app.handle(Input::Reply {
        id: *id,
        answer: Ok(Response::done("stopped")),
    });
    assert_eq!(done, vec![Effect::Quit]);
    // Said on the terminal afterwards, as `thaw down` says it.
    assert_eq!(app.farewell.as_deref(), Some("stopped"));
}

#[test]
fn removing_a_run_asks_first_and_is_done_when_the_daemon_says_so() {
    let mut app = fixture::app(false);
    let notice = |app: &App| app.notice.clone().map(|n| (n.text, n.role));
    // scratch trains: asking would only end in the daemon's refusal.
    assert_eq!(requests(&chars(&mut app, "jD")), vec![]);
    assert_eq!(app.popup, None);
    assert_eq!(
        notice(&app),
        Some((
            "demo/scratch is running: stop it first (s)".into(),
            Role::Warning
        ))
    );
    // pretrain has finished: asked, then sent on y.
    assert_eq!(requests(&chars(&mut app, "kD")), vec![]);
    let effects = chars(&mut app, "y");
    assert_eq!(
        requests(&effects),
        vec![Request::Remove {
            runs: vec!["demo/pretrain".into()],
            sessions: vec![],
        }]
    );
    let Some(Effect::Send { id, .. }) = effects.first() else {
        unreachable!()
    };
    // No worker to wait for: the daemon's answer is the end of it.
    app.handle(Input::Reply {
        id: *id,
        answer: Ok(Response::done("removed: run demo/pretrain")),
    });
    assert_eq!(
        notice(&app),
        Some(("removed: run demo/pretrain".into(), Role::Ok))
    );
}

#[test]
fn detaching_says_what_goes_on_without_the_dashboard() {
    let mut app = fixture::app(false);
    assert_eq!(chars(&mut app, "q"), vec![Effect::Quit]);
    let farewell = app.farewell.clone().unwrap();
    assert!(
        farewell.starts_with("detached; ") && farewell.contains("`thaw attach`"),
        "{farewell}"
    );
}

#[test]
fn a_freeze_is_shown_done_only_when_the_worker_did_it() {
    let mut app = fixture::app(false);
    let effects = chars(&mut app, "j\tjf");
    let Some(Effect::Send { id, .. }) = effects.first() else {
        panic!("{effects:?}")
    };
    let notice = |app: &App| app.notice.clone().map(|n| (n.text, n.role));
    assert_eq!(
        notice(&app),
        Some(("demo/scratch: freeze layer1: sent".into(), Role::Pending))
    );
    assert!(app.group_pending("demo/scratch", "layer1"));

    app.handle(Input::Reply {
        id: *id,
        answer: Ok(Response::done(
            "demo/scratch: freezing layer1 before the next step",
        )),
    });
    assert_eq!(notice(&app).map(|n| n.1), Some(Role::Pending));
    assert!(app.group_pending("demo/scratch", "layer1"));
    let scratch = app.board.run("demo/scratch").expect("scratch");
    assert!(
        !scratch.info.groups[1].frozen,
        "not frozen before the worker says so"
    );

    app.handle(Input::Daemon(fixture::freeze_event("scratch", "layer1")));
    assert_eq!(
        notice(&app),
        Some((
            "demo/scratch: froze layer1 (9344 params, by request)".into(),
            Role::Ok
        ))
    );
    assert!(!app.group_pending("demo/scratch", "layer1"));
    // Said done, the group shows frozen at once, not at the worker's next state.json.
    let scratch = app.board.run("demo/scratch").expect("scratch");
    assert!(scratch.info.groups[1].frozen, "frozen with the event");
}

#[test]
fn a_refused_request_says_why() {
    let mut app = fixture::app(false);
    // The queued run has no worker: the daemon refuses a checkpoint.
    let effects = chars(&mut app, "jjjjc");
    let Some(Effect::Send { id, .. }) = effects.first() else {
        panic!("{effects:?}")
    };
    app.handle(Input::Reply {
        id: *id,
        answer: Ok(Response::error("demo/late is queued: it has no worker yet")),
    });
    let notice = app.notice.clone().expect("a notice");
    assert_eq!(notice.role, Role::Error);
    assert_eq!(
        notice.text,
        "demo/late: refused: demo/late is queued: it has no worker yet"
    );
    // A daemon that cannot be reached is said too.
    let effects = chars(&mut app, "c");
    let Some(Effect::Send { id, .. }) = effects.first() else {
        panic!("{effects:?}")
    };
    app.handle(Input::Reply {
        id: *id,
        answer: Err("no thaw daemon is running".into()),
    });
    assert_eq!(
        app.notice.map(|n| n.text),
        Some("not sent: no thaw daemon is running".into())
    );
}

#[test]
fn pausing_a_run_that_is_not_running_sends_nothing_and_says_so() {
    let mut app = fixture::app(false);
    assert_eq!(requests(&chars(&mut app, "p")), vec![]);
    let text = app.notice.clone().map(|n| n.text).unwrap_or_default();
    assert_eq!(text, "demo/pretrain is finished: nothing to pause");
    // Nor is a finished run's stop asked about only to be refused by the daemon.
    assert_eq!(requests(&chars(&mut app, "s")), vec![]);
    assert!(app.popup.is_none());
    let text = app.notice.map(|n| n.text).unwrap_or_default();
    assert_eq!(text, "demo/pretrain is finished: nothing to stop");
}

#[test]
fn views_and_panes_follow_the_keys() {
    let mut app = fixture::app(false);
    chars(&mut app, "\n");
    assert_eq!(app.view, View::Detail);
    chars(&mut app, "jj");
    assert_eq!(
        (app.selected, app.group),
        (0, 2),
        "j moves the groups in detail"
    );
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.view, View::Runs);
    chars(&mut app, "mjjmv");
    assert_eq!(app.view, View::Compare);
    let compared: Vec<String> = app.compared().iter().map(|r| r.full_name()).collect();
    assert_eq!(compared, ["demo/pretrain", "demo/pretrained-frozen"]);
}

/// Esc and a key typed fast, or sent together over a slow link, arrive as Alt+key: the two keys.
#[test]
fn alt_and_a_key_is_esc_then_the_key() {
    let mut app = fixture::app(false);
    chars(&mut app, "\n");
    assert_eq!(app.view, View::Detail);
    let alt = |c| Input::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::ALT));
    app.handle(alt('v'));
    assert_eq!(app.view, View::Compare);
    app.handle(alt('?'));
    assert_eq!(app.view, View::Runs, "Esc went back; ? opened the help");
    assert_eq!(app.popup, Some(Popup::Help));
}
