use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;

use super::fixture;
use crate::protocol::Response;
use crate::tui::app::{App, Input};
use crate::tui::theme::ColorDepth;

/// The screen as text, a line per row (trailing spaces kept: the layout is the point).
fn screen(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal
        .draw(|frame| crate::tui::views::draw(frame, app))
        .expect("draws");
    let buffer = terminal.backend().buffer();
    (0..height)
        .map(|y| {
            (0..width)
                .map(|x| buffer[(x, y)].symbol().to_string())
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn press(app: &mut App, keys: &str) {
    for c in keys.chars() {
        let code = match c {
            '\t' => KeyCode::Tab,
            '\n' => KeyCode::Enter,
            c => KeyCode::Char(c),
        };
        app.handle(Input::Key(KeyEvent::new(code, KeyModifiers::NONE)));
    }
}

/// Both sizes of one state, as two snapshots.
fn snapshot_both(name: &str, app: &App) {
    insta::assert_snapshot!(format!("{name}_80x24"), screen(app, 80, 24));
    insta::assert_snapshot!(format!("{name}_160x48"), screen(app, 160, 48));
}

#[test]
fn runs_view() {
    snapshot_both("runs", &fixture::app(false));
}

#[test]
fn runs_view_with_the_groups_pane_focused_and_a_freeze_in_flight() {
    let mut app = fixture::app(false);
    press(&mut app, "j\tjf");
    snapshot_both("runs_groups", &app);
}

#[test]
fn run_detail() {
    let mut app = fixture::app(false);
    press(&mut app, "jjj\n");
    snapshot_both("detail", &app);
    press(&mut app, "l");
    insta::assert_snapshot!("detail_log_160x48", screen(&app, 160, 48));
    // A loss that comes down to nearly 0: the linear axis stops at 0, not below it.
    press(&mut app, "l");
    let selected = app.selected;
    let run = &mut app.board.runs[selected];
    let last = run.train_loss.len().max(1) as f64;
    for (i, p) in run.train_loss.iter_mut().enumerate() {
        let v = 2.0 * (1.0 - i as f64 / last);
        (p.mean, p.min, p.max) = (v, v, v);
    }
    let text = screen(&app, 160, 48);
    assert!(!text.contains("-0."), "{text}");
}

#[test]
fn compare_view() {
    let mut app = fixture::app(false);
    let effects = app.handle(Input::Key(KeyEvent::new(
        KeyCode::Char('v'),
        KeyModifiers::NONE,
    )));
    let Some(crate::tui::app::Effect::Send { id, .. }) = effects.first().cloned() else {
        panic!("v asks the daemon for the comparison: {effects:?}");
    };
    let comparison = fixture::comparison();
    app.handle(Input::Reply {
        id,
        answer: Ok(Response::Compare {
            session: "demo".into(),
            comparison,
        }),
    });
    snapshot_both("compare", &app);
    // The smallest terminal that draws views draws this one too (it panicked at 40x8).
    for (w, h) in [(40, 8), (40, 9), (41, 10), (60, 15)] {
        let text = screen(&app, w, h);
        assert!(text.contains(" thaw "), "{text}");
    }
    // Five runs in the table leave the chart a few rows on 24 lines: its legend stays, as it
    // alone tells the lines apart, and no line shows through it.
    let mut five = fixture::comparison();
    five.runs.push(five.runs[0].clone());
    five.runs.push(five.runs[1].clone());
    app.comparisons = vec![("demo".into(), Ok(five))];
    let small = screen(&app, 80, 24);
    let legend: Vec<&str> = small
        .lines()
        .filter(|l| l.contains("│pretrain ") || l.contains("│late "))
        .collect();
    assert_eq!(legend.len(), 2, "{small}");
    for row in legend {
        let inside = row.rsplit('│').nth(2).unwrap_or_default();
        assert!(
            inside
                .chars()
                .all(|c| !('\u{2800}'..='\u{28ff}').contains(&c)),
            "a line shows through the legend: {row}"
        );
    }
    // Two runs marked: the table has those two, not the rest of their session.
    app.comparisons = vec![("demo".into(), Ok(fixture::comparison()))];
    app.marked = ["demo/scratch", "demo/pretrained-frozen"]
        .map(String::from)
        .into();
    let marked = screen(&app, 160, 48);
    assert!(
        marked.contains("scratch") && marked.contains("pretrained-frozen"),
        "{marked}"
    );
    assert!(!marked.contains("frozen-then-thawed"), "{marked}");
}

#[test]
fn help_and_confirmation_popups() {
    let mut app = fixture::app(false);
    press(&mut app, "?");
    snapshot_both("help", &app);
    press(&mut app, "x");
    press(&mut app, "js");
    insta::assert_snapshot!("confirm_stop_80x24", screen(&app, 80, 24));
}

#[test]
fn a_lost_daemon_is_said_and_the_last_picture_stays() {
    let mut app = fixture::app(false);
    app.handle(Input::Lost("the daemon closed the connection".into()));
    insta::assert_snapshot!("lost_80x24", screen(&app, 80, 24));
    // A key pressed meanwhile is not sent; once the daemon is back that is old news.
    let effects = app.handle(Input::Key(KeyEvent::new(
        KeyCode::Char('c'),
        KeyModifiers::NONE,
    )));
    if let Some(crate::tui::app::Effect::Send { id, .. }) = effects.first() {
        app.handle(Input::Reply {
            id: *id,
            answer: Err("no thaw daemon is running: start one with `thaw up`".into()),
        });
    }
    let notice = app.notice.clone().map(|n| n.text).unwrap_or_default();
    assert!(notice.starts_with("not sent: "), "{notice}");
    app.handle(Input::Connected { pid: 4243 });
    assert!(app.notice.is_none(), "{:?}", app.notice);
}

#[test]
fn ascii_mode_draws_only_ascii() {
    let mut app = fixture::app(true);
    insta::assert_snapshot!("runs_ascii_80x24", screen(&app, 80, 24));
    for keys in ["jjj\n", "v"] {
        press(&mut app, keys);
        for (w, h) in [(80, 24), (160, 48)] {
            let text = screen(&app, w, h);
            assert!(text.is_ascii(), "{keys:?} at {w}x{h}:\n{text}");
        }
    }
}

#[test]
fn the_eta_stays_while_a_run_checkpoints() {
    let mut app = fixture::app(false);
    let row = |app: &App| {
        let text = screen(app, 160, 48);
        let row = text
            .lines()
            .find(|l| l.contains(" scratch "))
            .unwrap_or_default();
        row.split_whitespace()
            .rev()
            .nth(1)
            .unwrap_or_default()
            .to_string()
    };
    let running = row(&app);
    assert_ne!(running, "-");
    let scratch = app
        .board
        .runs
        .iter_mut()
        .find(|r| r.info.name == "scratch")
        .expect("scratch");
    scratch.info.status = crate::run::RunStatus::Checkpointing;
    assert_eq!(row(&app), running);
}

#[test]
fn a_squeezed_groups_pane_keeps_parameter_counts_whole() {
    let app = fixture::app(false);
    let text = screen(&app, 50, 12);
    let stem = text
        .lines()
        .find(|l| l.contains("│ stem"))
        .unwrap_or_default();
    assert!(stem.contains("2.4k"), "{text}");
    // The runs table gives up its sparkline and bars before the runs' names.
    for (w, h) in [(50, 12), (40, 8)] {
        let text = screen(&app, w, h);
        assert!(text.contains("pretrain"), "{text}");
    }
}

#[test]
fn a_tiny_terminal_gets_a_message_not_a_panic() {
    let app = fixture::app(false);
    let text = screen(&app, 20, 5);
    assert!(text.contains("thaw needs a"), "{text}");
    for (w, h) in [(1, 1), (39, 7), (40, 8), (41, 9), (300, 100)] {
        screen(&app, w, h);
    }
}

#[test]
fn without_colour_every_cell_is_uncoloured_and_states_still_show() {
    let mut app = fixture::app(false);
    app.depth = ColorDepth::None;
    let mut terminal = Terminal::new(TestBackend::new(160, 48)).expect("test terminal");
    terminal
        .draw(|frame| crate::tui::views::draw(frame, &app))
        .expect("draws");
    let buffer = terminal.backend().buffer();
    for cell in buffer.content() {
        assert_eq!((cell.fg, cell.bg), (Color::Reset, Color::Reset), "{cell:?}");
    }
    let text = screen(&app, 160, 48);
    for word in [
        "running",
        "finished",
        "paused",
        "queued",
        "❄❄❄❄❄·",
        "frozen",
        "trainable",
    ] {
        assert!(text.contains(word), "{word} missing:\n{text}");
    }
}

#[test]
fn every_theme_draws_every_view() {
    let mut app = fixture::app(false);
    for _ in 0..app.themes.names().len() {
        press(&mut app, "t");
        for keys in ["", "\n", "v", "v"] {
            press(&mut app, keys);
            screen(&app, 80, 24);
        }
    }
    assert_eq!(app.theme, "dark");
}

#[test]
fn the_header_shows_each_gpu_and_detail_a_run_s_gpu_memory() {
    let mut app = fixture::app(false);
    app.handle(Input::Daemon(fixture::gpus()));
    let wide = screen(&app, 160, 48);
    let header = wide.lines().next().unwrap_or_default();
    assert!(
        header.contains("GPU0 87% 31/80G 61°C 592W · GPU1 0% 1/80G 40°C 70W"),
        "{header}"
    );
    insta::assert_snapshot!("gpus_80x24", screen(&app, 80, 24));
}

#[test]
fn start_up_problems_are_listed_until_a_key_is_pressed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let themes = dir.path().join("config/themes");
    std::fs::create_dir_all(&themes).expect("themes dir");
    std::fs::write(themes.join("bad.toml"), "[colors]\nrunning = \"grean\"\n").expect("theme");
    let paths = crate::paths::Paths {
        data: dir.path().join("data"),
        config: dir.path().join("config"),
        runtime: dir.path().join("run"),
    };
    let options = crate::tui::AttachOptions {
        theme: Some("nope".into()),
        ..Default::default()
    };
    let mut app = crate::tui::prepare(&paths, &options);
    assert_eq!(app.theme, "dark");
    for response in fixture::stream() {
        app.handle(Input::Daemon(response));
    }
    let text = screen(&app, 100, 30).replace('\n', "");
    let squeezed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for part in [
        "bad.toml: colors.running: \"grean\" is not a colour",
        "unknown theme \"nope\"",
    ] {
        let part: String = part.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            squeezed.replace("│ │", " ").contains(&part) || text.contains(&part),
            "{part}:\n{}",
            screen(&app, 100, 30)
        );
    }
    press(&mut app, "x");
    assert_eq!(app.popup, None);
}

#[test]
fn without_colour_chart_lines_differ_by_their_dots_and_the_legend_says_which() {
    let mut app = fixture::app(false);
    app.depth = ColorDepth::None;
    press(&mut app, "jjj\n");
    let detail = screen(&app, 160, 48);
    assert!(
        detail.contains("⣿ train") && detail.contains("• val"),
        "{detail}"
    );
    press(&mut app, "v");
    let compare = screen(&app, 160, 48);
    for legend in [
        "⣿ pretrain",
        "• scratch",
        "█ pretrained-frozen",
        "▄ frozen-then-thawed",
    ] {
        assert!(compare.contains(legend), "{legend}:\n{compare}");
    }
    app.ascii = true;
    let ascii = screen(&app, 160, 48);
    assert!(
        ascii.contains("* pretrain") && ascii.contains("# scratch"),
        "{ascii}"
    );
}

#[test]
fn the_header_counts_waiting_runs_apart_and_a_run_not_started_has_no_step_total() {
    let app = late_in_detail(|info| {
        info.status = crate::run::RunStatus::Waiting;
        info.total_steps = 0;
    });
    let detail = screen(&app, 160, 48);
    let header = detail.lines().next().unwrap_or_default();
    assert!(
        header.contains("5 runs: 2 running, 1 paused, 1 waiting, 1 finished · "),
        "{header}"
    );
    // Narrow, the runs table's symbols say the same.
    let narrow = screen(&app, 80, 24);
    let header = narrow.lines().next().unwrap_or_default();
    assert!(header.contains("5 runs ▶2 ‖1 ⧗1 ✓1 · "), "{header}");
    let title = detail.lines().nth(1).unwrap_or_default();
    assert!(
        title.contains("demo/late") && title.contains("· step 0 ·"),
        "{detail}"
    );
}

#[test]
fn at_80_columns_the_detail_title_keeps_why_a_slurm_run_waits() {
    let app = late_in_detail(|info| {
        info.message = Some("Slurm job 9 pending (BeginTime)".into());
        info.slurm = Some(Box::new(crate::protocol::SlurmInfo {
            job_id: 9,
            state: "PENDING".into(),
            reason: Some("BeginTime".into()),
            node: None,
            restarts: 0,
        }));
    });
    let small = screen(&app, 80, 24);
    let title = small.lines().nth(1).unwrap_or_default();
    assert!(
        title.contains("demo/late") && title.contains("Slurm job 9 pending (BeginTime)"),
        "{title}"
    );
    assert_eq!(title.matches("Slurm job 9").count(), 1, "{title}");
    // With room, the rest comes back: model, device and learning rate.
    let wide = screen(&app, 200, 50);
    let title = wide.lines().nth(1).unwrap_or_default();
    assert!(
        title.contains("resnet-mini on flex") && title.contains("lr x1"),
        "{title}"
    );
}

/// The fixture's queued run `late`, changed by `change`, opened in the run detail.
fn late_in_detail(change: impl FnOnce(&mut crate::protocol::RunInfo)) -> App {
    let mut app = fixture::app(false);
    let late = app.board.runs.iter().position(|r| r.info.name == "late");
    let late = late.expect("the fixture's queued run");
    change(&mut app.board.runs[late].info);
    press(&mut app, &format!("{}\n", "j".repeat(late)));
    app
}

#[test]
fn a_narrow_detail_title_leaves_out_what_it_cannot_say_whole() {
    let app = late_in_detail(|info| {
        info.status = crate::run::RunStatus::Running;
        info.step = 171_234;
        info.total_steps = 500_000;
        info.epoch = 17;
        info.epochs = 50;
    });
    for (width, height) in [(60, 15), (52, 12), (40, 8)] {
        let title = screen(&app, width, height)
            .lines()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        assert!(title.contains("demo/late"), "{width}x{height}: {title}");
        // A number is said whole or not at all: no `epoch 18/5…`.
        for part in ["step 171234/500000", "epoch 18/50"] {
            let word = part.split(' ').next().unwrap();
            assert!(
                !title.contains(word) || title.contains(part),
                "{width}x{height}: {title}"
            );
        }
    }
    let title = screen(&app, 60, 15)
        .lines()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    assert!(title.contains("step 171234/500000"), "{title}");
}

#[test]
fn the_detail_title_says_the_gradient_norm_of_a_clipped_run_where_there_is_room() {
    let app = late_in_detail(|info| {
        info.grad_norm = Some(crate::run::GradNorm {
            mean: 3.2149,
            clipped: 0.4,
        });
    });
    let title = |width, height| {
        screen(&app, width, height)
            .lines()
            .nth(1)
            .unwrap_or_default()
            .to_string()
    };
    let wide = title(200, 50);
    assert!(wide.contains("· grad norm 3.21, 40% clipped "), "{wide}");
    // It is the first to go when the title is narrow; the step stays.
    let narrow = title(80, 24);
    assert!(
        !narrow.contains("grad norm") && narrow.contains("· step "),
        "{narrow}"
    );
}

#[test]
fn runs_on_different_gpus_are_told_apart_in_the_runs_table() {
    let mut app = fixture::app(false);
    let devices = ["tch:cuda:0", "tch:cuda:1", "tch:cpu", "flex"];
    for (run, device) in app.board.runs.iter_mut().zip(devices) {
        run.info.device = device.into();
    }
    let wide = screen(&app, 160, 48);
    for (run, device) in app
        .board
        .runs
        .iter()
        .zip(["cuda:0 ", "cuda:1 ", "tch:cpu ", "flex "])
    {
        let row = wide
            .lines()
            .find(|l| l.contains(&format!(" {} ", run.info.name)))
            .unwrap_or_default();
        assert!(row.contains(device), "{device:?} in {row}");
    }
}

#[test]
fn at_any_width_from_64_columns_the_runs_table_cuts_no_column() {
    let app = fixture::app(false);
    for width in 64..=200 {
        let text = screen(&app, width, 24);
        let header = text.lines().nth(2).unwrap_or_default();
        let pretrain = text.lines().nth(3).unwrap_or_default();
        assert!(
            header.contains(" train loss ") && pretrain.contains(" 100% "),
            "at {width} columns:\n{text}"
        );
        // The accuracy whole: `37.9`, and with the best beside it `37.9/37.9%`.
        assert!(
            pretrain.contains(" 37.9 ") || pretrain.contains(" 37.9/37.9% "),
            "at {width} columns:\n{text}"
        );
    }
}

#[test]
fn the_detail_charts_the_gradient_norm_of_a_run_that_clips_it() {
    let mut app = fixture::app(false);
    let at = app.board.runs.iter().position(|r| r.info.name == "scratch");
    let at = at.expect("the fixture's run");
    // Norms around 2, and a spike to 40 in a point that stands for two intervals (a long
    // run's), whose mean is 21.
    use crate::series::Point;
    app.board.runs[at].grad_norm = (1..=60)
        .map(|i| match i {
            20 => Point::single(200, 2.0).merge(Point::single(205, 40.0)),
            i => Point::single(i * 10, 2.0 + (i % 5) as f64 / 10.0),
        })
        .collect();
    press(&mut app, &format!("{}\n", "j".repeat(at)));
    let wide = screen(&app, 160, 48);
    assert!(
        wide.contains(" grad norm before clipping (linear) "),
        "{wide}"
    );
    // The spike, not the mean, sets the chart's top (40 and a margin).
    assert!(wide.contains("│41.90│"), "{wide}");
    // Without it (or without room), the accuracy has the side to itself.
    assert!(!screen(&app, 80, 24).contains("grad norm"));
    app.board.runs[at].grad_norm.clear();
    assert!(!screen(&app, 160, 48).contains("grad norm"));
}

#[test]
fn every_model_s_groups_fit_the_groups_pane_at_80_columns() {
    use crate::engine::model::MODELS;
    let most = MODELS.iter().map(|m| m.groups.len()).max().unwrap_or(0);
    let mut names: Vec<String> = MODELS
        .iter()
        .find(|m| m.groups.len() == most)
        .map(|m| m.groups.iter().map(|(name, _)| name.to_string()).collect())
        .unwrap_or_default();
    // Room for the nine groups a family may have.
    while names.len() < 9 {
        names.insert(names.len() - 1, format!("blocks{}", names.len()));
    }
    let mut app = fixture::app(false);
    let selected = app.selected;
    let run = &mut app.board.runs[selected];
    let template = run.info.groups[0].clone();
    run.info.groups = names
        .iter()
        .map(|name| crate::protocol::GroupInfo {
            name: name.clone(),
            params: 1_234_567,
            ..template.clone()
        })
        .collect();
    // At 80 columns and 30 rows the runs view and run detail show every group whole, with
    // its parameter count.
    let runs = screen(&app, 80, 30);
    press(&mut app, "\n");
    let detail = screen(&app, 80, 30);
    for text in [runs, detail] {
        for name in &names {
            let row = text
                .lines()
                .find(|l| l.contains(&format!("{name} ")) && l.contains("1.2M"))
                .unwrap_or_else(|| panic!("{name} missing:\n{text}"));
            assert!(row.contains("trainable"), "{name}: {row}\n{text}");
        }
    }
}
