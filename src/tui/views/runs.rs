//! The Runs view: a row per run (status, progress, a sparkline of its training loss,
//! validation accuracy, speed, time left, frozen groups at a glance), and below it the
//! selected run's layer groups and latest events.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};

use super::{Ctx, fit, groups};
use crate::run::RunStatus;
use crate::tui::app::Pane;
use crate::tui::board::RunView;
use crate::tui::theme::Role;

/// Columns shown from these widths on: the wider name and samples a second; the device; the
/// status word, last loss and time left (all of which, at their widths, leave the sparkline
/// the width of its header with run names of up to 20 characters).
const WIDE: u16 = 130;
const DEVICE: u16 = 120;
const MEDIUM: u16 = 110;
/// Below this the sparkline and the progress bar give way, so the run's name has room.
const NARROW: u16 = 64;
/// Below this the accuracy and the percentage done give way too.
const TINY: u16 = 50;

pub fn draw(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let app = ctx.app;
    if app.board.runs.is_empty() {
        let text = match app.board.ready {
            true => "No runs yet. Launch a session: thaw launch FILE (or thaw demo).",
            false => "Waiting for the daemon's runs…",
        };
        frame.render_widget(
            Paragraph::new(text)
                .style(ctx.style(Role::Dim))
                .block(ctx.block(" runs ")),
            area,
        );
        return;
    }
    let table_height = (app.board.runs.len() as u16 + 3).min(area.height.saturating_sub(6).max(4));
    let [table, lower] =
        Layout::vertical([Constraint::Length(table_height), Constraint::Min(0)]).areas(area);
    draw_table(frame, table, ctx);
    if lower.height >= 3 {
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                .areas(lower);
        groups::draw(frame, left, ctx, app.pane == Pane::Groups);
        groups::draw_events(frame, right, ctx);
    }
}

fn draw_table(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let app = ctx.app;
    let width = area.width;
    let one_session = app
        .board
        .runs
        .windows(2)
        .all(|w| w[0].info.session == w[1].info.session);
    let mut name_width = app
        .board
        .runs
        .iter()
        .map(|r| label(r, one_session).chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, if width >= WIDE { 32 } else { 20 });
    let groups_width = app
        .board
        .runs
        .iter()
        .map(|r| r.info.groups.len())
        .max()
        .unwrap_or(0)
        .max(6);
    let bar = match width {
        w if w >= MEDIUM => 10,
        w if w >= NARROW => 6,
        _ => 0,
    };
    let epochs_width = app
        .board
        .runs
        .iter()
        .map(|r| epochs(r).len())
        .max()
        .unwrap_or(5);
    let mut columns: Vec<(&str, Constraint)> = vec![
        ("", Constraint::Length(2)),
        ("run", Constraint::Length(name_width as u16)),
        (
            "status",
            Constraint::Length(if width >= MEDIUM { 15 } else { 2 }),
        ),
    ];
    if width >= DEVICE {
        columns.push(("device", Constraint::Length(9)));
    }
    let percent_width = if width >= TINY { 5 } else { 0 };
    columns.push((
        "progress",
        Constraint::Length((epochs_width + bar + percent_width) as u16),
    ));
    if width >= NARROW {
        columns.push(("train loss", Constraint::Min(8)));
    }
    if width >= MEDIUM {
        columns.push(("loss", Constraint::Length(7)));
    }
    if width >= TINY {
        columns.push((
            "val acc",
            Constraint::Length(if width >= MEDIUM { 13 } else { 7 }),
        ));
    }
    if width >= WIDE {
        columns.push(("img/s", Constraint::Length(7)));
    }
    if width >= MEDIUM {
        columns.push(("ETA", Constraint::Length(7)));
    }
    columns.push(("groups", Constraint::Length(groups_width as u16)));

    // The sparkline column gets what the others leave, and no less than its header: long
    // names are cut (`pretrained-f…`) rather than every column squeezed.
    let widths = |columns: &[(&str, Constraint)]| {
        columns
            .iter()
            .map(|(_, c)| match c {
                Constraint::Length(n) => n + 1,
                _ => 1,
            })
            .sum::<u16>()
            + 2
    };
    let mut fixed = widths(&columns);
    let spark_header = "train loss".len() as u16;
    let excess = (fixed + spark_header).saturating_sub(width);
    if width >= NARROW && excess > 0 {
        name_width = name_width.saturating_sub(usize::from(excess)).max(4);
        columns[1].1 = Constraint::Length(name_width as u16);
        fixed = widths(&columns);
    }
    let spark_width = width.saturating_sub(fixed).clamp(6, 60) as usize;

    let rows = app.board.runs.iter().map(|run| {
        let info = &run.info;
        let status_style = ctx.style(status_role(info.status));
        let symbol = ctx.symbols.status(info.status);
        let mark = match app.marked.contains(&run.full_name()) {
            true => ctx.symbols.marked,
            false => " ",
        };
        let mut cells = vec![
            Cell::from(mark),
            Cell::from(fit(&label(run, one_session), name_width)),
            Cell::from(Span::styled(
                match width >= MEDIUM {
                    true => format!("{symbol} {}", info.status.word()),
                    false => symbol.to_string(),
                },
                status_style,
            )),
        ];
        if width >= DEVICE {
            cells.push(Cell::from(fit(&info.device_said(), 9)));
        }
        let fraction = match info.total_steps {
            0 => 0.0,
            n => info.step as f64 / n as f64,
        };
        cells.push(Cell::from(Line::from(vec![
            Span::raw(format!("{:<epochs_width$}", epochs(run))),
            Span::styled(ctx.symbols.bar(fraction, bar), status_style),
            Span::raw(match width >= TINY {
                true => format!("{:>4.0}%", 100.0 * fraction),
                false => String::new(),
            }),
        ])));
        if width >= NARROW {
            cells.push(Cell::from(Span::styled(
                spark(run, spark_width, ctx),
                ctx.style(Role::TrainLoss),
            )));
        }
        if width >= MEDIUM {
            cells.push(Cell::from(
                info.last_loss
                    .map_or("-".into(), |l| crate::number::fixed(l, 4)),
            ));
        }
        let percent = |v: Option<f64>| v.map_or("-".to_string(), |a| format!("{:.1}", 100.0 * a));
        if width >= TINY {
            let best = info.best_val_accuracy;
            cells.push(Cell::from(match (width >= MEDIUM, best.is_some()) {
                (true, true) => format!("{}/{}%", percent(run.last_val_accuracy()), percent(best)),
                // Not validated yet: a dash, not `-/-%`.
                _ => percent(best),
            }));
        }
        if width >= WIDE {
            cells.push(Cell::from(
                info.samples_per_sec
                    .map_or("-".into(), |s| format!("{s:.0}")),
            ));
        }
        if width >= MEDIUM {
            cells.push(Cell::from(eta(run)));
        }
        cells.push(Cell::from(frozen_glance(run, ctx)));
        Row::new(cells)
    });
    let header = Row::new(columns.iter().map(|(name, _)| *name)).style(ctx.style(Role::Dim));
    let focused = app.pane == Pane::Runs;
    let table = Table::new(rows, columns.iter().map(|(_, c)| *c))
        .header(header)
        .block(ctx.block(" runs "))
        .row_highlight_style(match focused {
            true => ctx.style(Role::Selected),
            false => ctx.style(Role::Dim),
        })
        .highlight_symbol(ctx.symbols.cursor);
    let mut state = TableState::default().with_selected(Some(app.selected));
    frame.render_stateful_widget(table, area, &mut state);
}

/// `e3/10 `: the epoch the run is in.
fn epochs(run: &RunView) -> String {
    let info = &run.info;
    format!("e{}/{} ", info.epoch_in_progress(), info.epochs)
}

/// The run's name, with its session when several are shown.
fn label(run: &RunView, one_session: bool) -> String {
    match one_session {
        true => run.info.name.clone(),
        false => run.full_name(),
    }
}

/// The colour role of a status.
pub fn status_role(status: RunStatus) -> Role {
    match status {
        RunStatus::Queued => Role::Queued,
        RunStatus::Waiting => Role::Waiting,
        RunStatus::Running => Role::Running,
        RunStatus::Paused => Role::Paused,
        RunStatus::Checkpointing => Role::Checkpointing,
        RunStatus::Finished => Role::Finished,
        RunStatus::Failed => Role::Failed,
        RunStatus::Stopped => Role::Stopped,
        RunStatus::Interrupted => Role::Interrupted,
    }
}

/// The last `width` training losses as a one-line sparkline, scaled to their own range.
fn spark(run: &RunView, width: usize, ctx: &Ctx) -> String {
    let values: Vec<f64> = run
        .train_loss
        .iter()
        .rev()
        .take(width)
        .map(|p| p.mean)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let set = &ctx.symbols.sparkline;
    let levels = [
        set.one_eighth,
        set.one_quarter,
        set.three_eighths,
        set.half,
        set.five_eighths,
        set.three_quarters,
        set.seven_eighths,
        set.full,
    ];
    values
        .iter()
        .map(|&v| {
            let t = match hi > lo {
                true => (v - lo) / (hi - lo),
                false => 0.5,
            };
            levels[((t * 7.0).round() as usize).min(7)]
        })
        .collect()
}

/// Time left, `-` when it is not training.
fn eta(run: &RunView) -> String {
    run.info.time_left_said()
}

/// `❄❄❄❄··`: a glyph per group, frozen or not.
fn frozen_glance<'a>(run: &RunView, ctx: &Ctx) -> Line<'a> {
    Line::from(
        run.info
            .groups
            .iter()
            .map(|g| match g.frozen {
                true => Span::styled(ctx.symbols.frozen, ctx.style(Role::Frozen)),
                false => Span::styled(ctx.symbols.trainable, ctx.style(Role::Trainable)),
            })
            .collect::<Vec<_>>(),
    )
}
