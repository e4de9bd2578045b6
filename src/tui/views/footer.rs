//! The footer: the last request and what became of it, then the keys that apply where the
//! cursor is.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{Ctx, fit};
use crate::tui::app::Link;
use crate::tui::keys;
use crate::tui::theme::Role;

pub fn draw(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let app = ctx.app;
    let width = area.width as usize;
    let notice = match (&app.link, &app.notice) {
        (Link::Down { reason }, _) => Line::from(Span::styled(
            fit(
                // What is happening first: on a narrow terminal the reason is what is cut.
                &format!(" daemon unreachable, reconnecting… ({reason})"),
                width,
            ),
            ctx.style(Role::Error),
        )),
        (_, Some(notice)) => Line::from(Span::styled(
            fit(&format!(" {}", notice.text), width),
            ctx.style(notice.role),
        )),
        _ => Line::default(),
    };
    // Help and detach always show: they are how a user finds the rest and leaves.
    let status = match app.place() {
        keys::Place::Compare => None,
        _ => app.run().map(|r| r.info.status),
    };
    let bindings = keys::footer(app.place(), status);
    let essential = |label: &str| matches!(label, "?" | "q");
    let cost = |b: &keys::Binding| short_label(b).chars().count() + b.short.chars().count() + 3;
    let mut room = width.saturating_sub(1)
        - bindings
            .iter()
            .filter(|b| essential(b.label))
            .map(|b| cost(b))
            .sum::<usize>()
            .min(width.saturating_sub(1));
    let mut keys_line = vec![Span::raw(" ")];
    for binding in bindings {
        if !essential(binding.label) {
            if cost(binding) > room {
                continue;
            }
            room -= cost(binding);
        }
        keys_line.push(Span::styled(short_label(binding), ctx.style(Role::Title)));
        keys_line.push(Span::styled(
            format!(" {}  ", binding.short),
            ctx.style(Role::Dim),
        ));
    }
    frame.render_widget(Paragraph::new(vec![notice, Line::from(keys_line)]), area);
}

/// The keys of a binding, short: `j/k` for `j/k ↑/↓`.
fn short_label(binding: &keys::Binding) -> &'static str {
    binding.label.split(' ').next().unwrap_or(binding.label)
}
