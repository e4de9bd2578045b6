//! thaw's log lines, through `tracing`: the daemon's (on its stderr: the terminal with `thaw up
//! --foreground`, else `daemon.log`) and the notes other commands print on stderr. Each line is
//! `YYYY-MM-DD HH:MM:SS message` (UTC); only thaw's own events are written, not those of the
//! libraries it uses.

use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::prelude::*;

/// Sends thaw's events at `info` and above to stderr, for the rest of the process.
pub fn init() {
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .with_level(false)
        .with_timer(Utc);
    let only_thaw = Targets::new().with_target("thaw", Level::INFO);
    // A second call (a test that starts two daemons in one process) keeps the first.
    let _ = tracing_subscriber::registry()
        .with(lines.with_filter(only_thaw))
        .try_init();
}

/// The time of a line, as the rest of thaw says times.
struct Utc;

impl FormatTime for Utc {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        w.write_str(&crate::number::utc(now))
    }
}
