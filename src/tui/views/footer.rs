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
                &format!(" daemon unreachable ({reason}): reconnecting…"),
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
    let mut keys_line = vec![Span::raw(" ")];
    let mut used = 1;
    for binding in keys::footer(app.place()) {
        let label = match binding.label {
            "j/k ↑/↓" => "j/k",
            other => other,
        };
        let len = label.chars().count() + binding.short.chars().count() + 3;
        // Help and detach always show: they are how a user finds the rest and leaves.
        let essential = matches!(binding.label, "?" | "q");
        if used + len > width.saturating_sub(if essential { 0 } else { 16 }) {
            continue;
        }
        used += len;
        keys_line.push(Span::styled(label, ctx.style(Role::Title)));
        keys_line.push(Span::styled(
            format!(" {}  ", binding.short),
            ctx.style(Role::Dim),
        ));
    }
    frame.render_widget(Paragraph::new(vec![notice, Line::from(keys_line)]), area);
}
