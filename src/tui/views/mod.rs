//! Drawing: one module per view, each drawing the [`App`] into a `Rect`. Nothing here
//! changes state or does I/O.

mod charts;
mod compare;
mod detail;
mod footer;
mod groups;
mod header;
mod help;
mod runs;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::app::{App, View};
use super::symbols::{Symbols, asciify};
use super::theme::Role;

/// The smallest terminal the views fit; below it the screen says so.
pub const MIN_WIDTH: u16 = 40;
pub const MIN_HEIGHT: u16 = 8;

/// What every view draws with.
pub struct Ctx<'a> {
    pub app: &'a App,
    pub symbols: Symbols,
}

impl Ctx<'_> {
    pub fn style(&self, role: Role) -> Style {
        self.app.theme().style(role, self.app.depth)
    }

    /// A bordered block with a title.
    pub fn block<'b>(&self, title: impl Into<Line<'b>>) -> Block<'b> {
        Block::default()
            .borders(Borders::ALL)
            .border_set(self.symbols.border)
            .border_style(self.style(Role::Border))
            .title(title.into().style(self.style(Role::Title)))
    }
}

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, app: &App) {
    let ctx = Ctx {
        app,
        symbols: Symbols::new(app.ascii),
    };
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "thaw needs a terminal of at least {MIN_WIDTH}x{MIN_HEIGHT}; this one is {}x{}. q detaches.",
            area.width, area.height
        );
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
    } else {
        let [top, body, bottom] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Min(1),
            Constraint::Length(2),
        ])
        .areas(area);
        header::draw(frame, top, &ctx);
        match app.view {
            View::Runs => runs::draw(frame, body, &ctx),
            View::Detail => detail::draw(frame, body, &ctx),
            View::Compare => compare::draw(frame, body, &ctx),
        }
        footer::draw(frame, bottom, &ctx);
        // Over the header and footer too: at 80x24 the help then fits in one column.
        help::draw_popup(frame, area, &ctx);
    }
    if app.ascii {
        asciify(frame.buffer_mut());
    }
}

/// A centred rectangle of at most `width` x `height` inside `area`.
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

/// Clears `area` and draws `block` with `lines` in it.
pub fn popup(frame: &mut Frame, area: Rect, block: Block, lines: Vec<Line>) {
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}

/// `12.3k`-style short numbers for parameter counts.
pub fn short_count(n: usize) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 10_000 => format!("{:.0}k", n as f64 / 1e3),
        n if n >= 1_000 => format!("{:.1}k", n as f64 / 1e3),
        n => n.to_string(),
    }
}

/// `text` cut to `width` characters, with an ellipsis when cut.
pub fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}
