//! The header: host, daemon uptime, CPU load, how many runs do what, and the link to the
//! daemon.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{Ctx, fit};
use crate::engine::rundir::RunStatus;
use crate::tui::app::Link;
use crate::tui::theme::Role;

pub fn draw(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let app = ctx.app;
    let host = &app.host;
    let header = ctx.style(Role::Header);
    let runs = &app.board.runs;
    let count = |status: RunStatus| runs.iter().filter(|r| r.info.status == status).count();
    let running = count(RunStatus::Running) + count(RunStatus::Checkpointing);
    let waiting = count(RunStatus::Queued) + count(RunStatus::Waiting);
    // In the order they are given up when the terminal is narrow: last first.
    let mut parts = vec![format!(
        "{} runs: {running} running, {waiting} queued",
        runs.len()
    )];
    if !host.hostname.is_empty() {
        parts.insert(0, host.hostname.clone());
    }
    if host.cores > 0 {
        let load = host.cpu_percent.map_or(String::new(), |p| format!(" {p}%"));
        parts.push(format!("cpu {}c{load}", host.cores));
    }
    if let Some(up) = host.daemon_uptime {
        parts.push(format!("up {}", minutes(up)));
    }
    let link = match &app.link {
        Link::Connecting => Span::styled("connecting…", ctx.style(Role::Pending)),
        Link::Up { pid } => Span::styled(format!("daemon {pid}"), ctx.style(Role::Dim)),
        Link::Down { .. } => Span::styled(
            format!("{} daemon lost", ctx.symbols.status(RunStatus::Failed)),
            ctx.style(Role::Error),
        ),
    };
    let width = area.width as usize;
    let room = width.saturating_sub(" thaw ".len() + link.content.chars().count() + 1);
    while parts.len() > 1 && parts.join(" · ").chars().count() > room {
        parts.pop();
    }
    let text = fit(&parts.join(" · "), room);
    let free = room.saturating_sub(text.chars().count());
    let line = Line::from(vec![
        Span::styled(" thaw ", ctx.style(Role::Title)),
        Span::styled(text, header),
        Span::raw(" ".repeat(free + 1)),
        link,
    ]);
    frame.render_widget(Paragraph::new(line), area);
}

/// An uptime to the minute (`<1m`, `42m`, `3h07m`, `2d04h`): it changes at most once a minute.
fn minutes(seconds: u64) -> String {
    let m = seconds / 60;
    match m {
        0 => "<1m".into(),
        m if m < 60 => format!("{m}m"),
        m if m < 24 * 60 => format!("{}h{:02}m", m / 60, m % 60),
        m => format!("{}d{:02}h", m / (24 * 60), m % (24 * 60) / 60),
    }
}
