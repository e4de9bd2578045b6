//! The header: host, daemon uptime, CPU load, how many runs do what, and the link to the
//! daemon.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{Ctx, fit};
use crate::run::RunStatus;
use crate::tui::app::Link;
use crate::tui::theme::Role;

pub fn draw(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let app = ctx.app;
    let host = &app.host;
    let header = ctx.style(Role::Header);
    let runs = &app.board.runs;
    let count = |status: RunStatus| runs.iter().filter(|r| r.info.status == status).count();
    let running = count(RunStatus::Running) + count(RunStatus::Checkpointing);
    // Running always; the other states when any run is in them, so a session that has ended
    // says how (`5 runs: 0 running, 4 finished, 1 failed`). Queued is waiting for a slot or a
    // Slurm job; waiting, for another run's weights. Short, the runs table's symbols say it
    // (`5 runs ▶0 ✓4 ✗1`).
    let others = [
        RunStatus::Paused,
        RunStatus::Queued,
        RunStatus::Waiting,
        RunStatus::Interrupted,
        RunStatus::Failed,
        RunStatus::Stopped,
        RunStatus::Finished,
    ]
    .map(|status| (status, count(status)));
    let count = match runs.len() {
        1 => "1 run".to_string(),
        n => format!("{n} runs"),
    };
    let mut states = format!("{count}: {running} running");
    let mut short_states = format!(
        "{count} {}{running}",
        ctx.symbols.status(RunStatus::Running)
    );
    for (status, n) in others.into_iter().filter(|(_, n)| *n > 0) {
        states.push_str(&format!(", {n} {}", status.word()));
        short_states.push_str(&format!(" {}{n}", ctx.symbols.status(status)));
    }
    // In the order they are given up when the terminal is narrow: last first.
    let mut parts = vec![states];
    if !host.hostname.is_empty() {
        parts.insert(0, host.hostname.clone());
    }
    if host.cores > 0 {
        // The load only while runs train: idle, the header (and so the terminal) stays still.
        let load = match running {
            0 => None,
            _ => host.cpu_percent,
        };
        let load = load.map_or(String::new(), |p| format!(" {p}%"));
        parts.push(format!("cpu {}c{load}", host.cores));
    }
    if let Some(up) = host.daemon_uptime {
        parts.push(format!("up {}", minutes(up)));
    }
    // GPUs go last when the line is cut (first their temperature and power): they are what a
    // GPU user watches.
    let at = parts.len().min(2);
    let gpus: Vec<String> = app.board.gpus.iter().map(|g| gpu(g, true)).collect();
    let short_gpus: Vec<String> = app.board.gpus.iter().map(|g| gpu(g, false)).collect();
    let mut parts = [&parts[..at], &gpus[..], &parts[at..]].concat();
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
    let fits = |parts: &[String]| parts.join(" · ").chars().count() <= room;
    if !fits(&parts) {
        parts.splice(at..at + short_gpus.len(), short_gpus);
    }
    let states_at = usize::from(!host.hostname.is_empty());
    if !fits(&parts) {
        parts[states_at] = short_states;
    }
    while parts.len() > at + app.board.gpus.len() && !fits(&parts) {
        parts.pop();
    }
    while parts.len() > 1 && !fits(&parts) {
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

/// `GPU0 87% 31/80G 64°C 250W` (`full`) or `GPU0 87% 31/80G`: what one GPU does now.
fn gpu(stats: &crate::gpu::GpuStats, full: bool) -> String {
    let gib = |bytes: u64| bytes as f64 / (1u64 << 30) as f64;
    let mut text = format!("GPU{}", stats.index);
    if let Some(u) = stats.utilization {
        text.push_str(&format!(" {u}%"));
    }
    if let Some(used) = stats.memory_used {
        text.push_str(&format!(
            " {:.0}/{:.0}G",
            gib(used),
            gib(stats.memory_total)
        ));
    }
    if !full {
        return text;
    }
    if let Some(t) = stats.temperature {
        text.push_str(&format!(" {t}°C"));
    }
    if let Some(w) = stats.power {
        text.push_str(&format!(" {w:.0}W"));
    }
    text
}
