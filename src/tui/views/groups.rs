//! A run's layer groups (parameters, frozen or trainable, learning rate, how much came from
//! the weights file) and its latest events; shared by the Runs view and Run detail.

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};

use super::{Ctx, fit, short_count};
use crate::protocol::GroupInfo;
use crate::run::EventKind;
use crate::tui::theme::Role;

/// The selected run's groups; `focused` when the cursor is on them.
pub fn draw(frame: &mut Frame, area: Rect, ctx: &Ctx, focused: bool) {
    let app = ctx.app;
    let Some(run) = app.run() else {
        return;
    };
    let full = run.full_name();
    let wide = area.width >= 52;
    let rows = run.info.groups.iter().map(|g| {
        let pending = match app.group_pending(&full, &g.name) {
            true => ctx.symbols.pending,
            false => " ",
        };
        let state = match g.frozen {
            true => Span::styled(
                format!("{} frozen{pending}", ctx.symbols.frozen),
                ctx.style(Role::Frozen),
            ),
            false => Span::styled(
                format!("{} trainable{pending}", ctx.symbols.trainable),
                ctx.style(Role::Trainable),
            ),
        };
        let mut cells = vec![
            Cell::from(fit(&g.name, 10)),
            // Aligned rather than padded: a column squeezed on a small terminal keeps `49k`
            // whole instead of cutting it to `49`.
            Cell::from(Line::from(short_count(g.params)).alignment(Alignment::Right)),
            Cell::from(state),
            Cell::from(g.lr.map_or("-".into(), |lr| format!("{lr:.1e}"))),
        ];
        if wide {
            cells.push(Cell::from(origin(g)));
        }
        Row::new(cells)
    });
    let mut widths = vec![
        Constraint::Length(10),
        Constraint::Length(6),
        Constraint::Length(12),
        Constraint::Length(7),
    ];
    let mut header = vec!["group", "params", "state", "lr"];
    if wide {
        widths.push(Constraint::Min(6));
        header.push("weights");
    }
    let title = format!(" {} groups ", fit(&run.info.name, 24));
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(ctx.style(Role::Dim)))
        .block(ctx.block(title))
        .row_highlight_style(match focused {
            true => ctx.style(Role::Selected),
            false => ratatui::style::Style::default(),
        })
        .highlight_symbol(match focused {
            true => ctx.symbols.cursor,
            false => " ",
        });
    let mut state = TableState::default().with_selected(Some(app.group));
    frame.render_stateful_widget(table, area, &mut state);
}

/// Where the group's weights came from: all from the file, partly, or new.
fn origin(group: &GroupInfo) -> String {
    match group.pretrained {
        None => "scratch".into(),
        Some(0) => "new".into(),
        Some(p) if p >= group.params => "pretrained".into(),
        Some(p) => format!(
            "{:.0}% pretrained",
            100.0 * p as f64 / group.params.max(1) as f64
        ),
    }
}

/// The selected run's latest events, newest last.
pub fn draw_events(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let Some(run) = ctx.app.run() else {
        return;
    };
    let inner = area.height.saturating_sub(2) as usize;
    let width = area.width.saturating_sub(2) as usize;
    // The step, right-aligned, and a space: continuation lines are indented as far.
    const STEP: usize = 7;
    let text_width = width.saturating_sub(STEP).max(1);
    // The newest events, each wrapped whole under its step: a narrow pane shows fewer events
    // rather than every one cut short. One too long for the pane keeps its start. Gathered
    // newest first, bottom line first, and turned over at the end.
    let mut lines: Vec<Line> = Vec::new();
    for e in run.events.iter().rev() {
        let room = inner.saturating_sub(lines.len());
        if room == 0 {
            break;
        }
        let role = match e.kind {
            EventKind::Freeze => Role::Frozen,
            EventKind::Unfreeze => Role::Trainable,
            EventKind::Error | EventKind::Nan => Role::Error,
            EventKind::Warning | EventKind::Interrupted | EventKind::Rollback => Role::Warning,
            EventKind::Best | EventKind::Finished => Role::Ok,
            _ => Role::Text,
        };
        let mut parts = wrap(&e.message, text_width);
        if parts.len() > room {
            // Only the newest can be cut; older ones are left out whole.
            if !lines.is_empty() {
                break;
            }
            let rest = parts[room - 1..].join(" ");
            parts.truncate(room - 1);
            parts.push(fit(&rest, text_width));
        }
        let event = parts.into_iter().enumerate().map(|(i, part)| {
            let step = match i {
                0 => format!("{:>w$} ", e.step, w = STEP - 1),
                _ => " ".repeat(STEP),
            };
            Line::from(vec![
                Span::styled(step, ctx.style(Role::Dim)),
                Span::styled(part, ctx.style(role)),
            ])
        });
        lines.extend(event.rev());
    }
    lines.reverse();
    frame.render_widget(Paragraph::new(lines).block(ctx.block(" events ")), area);
}

/// `text` in lines of at most `width` characters, broken at spaces where it can be.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let (used, len) = (line.chars().count(), word.chars().count());
        if used > 0 && used + 1 + len <= width {
            line.push(' ');
            line.push_str(word);
            continue;
        }
        if used > 0 {
            lines.push(std::mem::take(&mut line));
        }
        // A word longer than a line (a path) is broken where the lines end.
        let mut chars: Vec<char> = word.chars().collect();
        while chars.len() > width {
            lines.push(chars.drain(..width).collect());
        }
        line = chars.into_iter().collect();
    }
    lines.push(line);
    lines
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wrapping_breaks_at_spaces_and_inside_words_too_long_for_a_line() {
        assert_eq!(
            wrap("epoch 3: val loss 0.8762, accuracy 65%", 20),
            ["epoch 3: val loss", "0.8762, accuracy 65%"]
        );
        assert_eq!(
            wrap("saved /a/very/long/path/best.bpk now", 10),
            ["saved", "/a/very/lo", "ng/path/be", "st.bpk now"]
        );
        assert_eq!(wrap("", 10), [""]);
        assert_eq!(wrap("fits", 10), ["fits"]);
    }
}
