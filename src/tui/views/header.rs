//! The header: host, daemon uptime, CPU load, how many runs do what, and the link to the
//! daemon.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::Ctx;
use crate::engine::rundir::RunStatus;
use crate::tui::app::Link;
use crate::tui::theme::Role;

pub fn draw(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let app = ctx.app;
    let host = &app.host;
    let header = ctx.style(Role::Header);
    let mut spans = vec![Span::styled(" thaw ", ctx.style(Role::Title))];
    if !host.hostname.is_empty() {
        spans.push(Span::styled(format!("{} ", host.hostname), header));
    }
    if let Some(up) = host.daemon_uptime {
        spans.push(Span::styled(format!("· up {} ", minutes(up)), header));
    }
    if host.cores > 0 {
        let load = host
            .cpu_percent
            .map_or(String::new(), |p| format!(" {p:>3}%"));
        spans.push(Span::styled(
            format!("· cpu {}c{load} ", host.cores),
            header,
        ));
    }
    let runs = &app.board.runs;
    let count = |status: RunStatus| runs.iter().filter(|r| r.info.status == status).count();
    let running = count(RunStatus::Running) + count(RunStatus::Checkpointing);
    let waiting = count(RunStatus::Queued) + count(RunStatus::Waiting);
    spans.push(Span::styled(
        format!(
            "· {} runs: {running} running, {waiting} queued ",
            runs.len()
        ),
        header,
    ));
    let link = match &app.link {
        Link::Connecting => Span::styled("connecting…", ctx.style(Role::Pending)),
        Link::Up { pid } => Span::styled(format!("daemon {pid}"), ctx.style(Role::Dim)),
        Link::Down { .. } => Span::styled(
            format!("{} daemon lost", ctx.symbols.status(RunStatus::Failed)),
            ctx.style(Role::Error),
        ),
    };
    let used: usize = spans.iter().map(|s| s.content.chars().count()).sum();
    let free = (area.width as usize).saturating_sub(used + link.content.chars().count() + 1);
    spans.push(Span::raw(" ".repeat(free)));
    spans.push(link);
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
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
