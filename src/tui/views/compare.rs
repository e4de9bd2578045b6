//! Compare: the marked runs (or the selected run's session) overlaid on one chart of
//! validation loss or accuracy, with a legend, and `thaw compare`'s table below.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::Ctx;
use super::charts::{self, xy};
use crate::tui::app::Metric;
use crate::tui::theme::Role;

pub fn draw(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let app = ctx.app;
    let runs = app.compared();
    let mut left_out: Vec<String> = Vec::new();
    let table_lines: Vec<String> = app
        .comparisons
        .iter()
        .flat_map(|(session, result)| match result {
            Ok(comparison) => {
                let mut lines = vec![format!("session {session}")];
                let room = usize::from(area.width.saturating_sub(2));
                // Marked runs: the table has those the chart has, not their whole sessions
                // (copied only then, not at every draw).
                let marked_only;
                let comparison = match app.marked.is_empty() {
                    true => comparison,
                    false => {
                        let mut some = comparison.clone();
                        some.runs
                            .retain(|r| app.marked.contains(&format!("{session}/{}", r.run)));
                        marked_only = some;
                        &marked_only
                    }
                };
                let (table, hidden) = comparison.table_within(room);
                lines.extend(table.lines().map(String::from));
                for heading in hidden {
                    if !left_out.contains(&heading) {
                        left_out.push(heading);
                    }
                }
                lines
            }
            Err(message) => vec![format!("session {session}: {message}")],
        })
        .collect();
    // Half the body at most, and at least a border and a row where the body has room for it
    // (at 40x8 it has 6 rows).
    let table_height = (table_lines.len() as u16 + 2)
        .min(area.height / 2)
        .max(3.min(area.height));
    let [chart_area, table_area] =
        Layout::vertical([Constraint::Min(5), Constraint::Length(table_height)]).areas(area);

    let one_session = runs
        .windows(2)
        .all(|w| w[0].info.session == w[1].info.session);
    let lines: Vec<charts::Line> = runs
        .iter()
        .enumerate()
        .map(|(i, run)| charts::Line {
            name: match one_session {
                true => run.info.name.clone(),
                false => run.full_name(),
            },
            style: app.theme().series(i, app.depth),
            points: match app.metric {
                Metric::Loss => xy(&run.val_loss),
                Metric::Accuracy => charts::accuracy_xy(&run.val_accuracy),
            },
        })
        .collect();
    let what = match app.metric {
        Metric::Loss => "validation loss",
        Metric::Accuracy => "validation accuracy %",
    };
    let whose = match app.marked.is_empty() {
        true => "the selected run's session".to_string(),
        false => format!("{} marked runs", app.marked.len()),
    };
    charts::draw(
        frame,
        chart_area,
        ctx,
        format!(" {what}: {whose} (a: loss/accuracy) "),
        lines,
        &[],
        false,
    );
    // Columns the width left out are named where they cost no row: in the title.
    let title = match left_out.is_empty() {
        true => " thaw compare ".to_string(),
        false => format!(" thaw compare · too narrow for: {} ", left_out.join(", ")),
    };
    let text: Vec<Line> = match table_lines.is_empty() {
        true => vec![Line::from(Span::styled(
            "asking the daemon…",
            ctx.style(Role::Dim),
        ))],
        false => table_lines.into_iter().map(Line::from).collect(),
    };
    frame.render_widget(Paragraph::new(text).block(ctx.block(title)), table_area);
}
