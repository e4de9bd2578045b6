//! The characters the dashboard draws with: Unicode by default, plain ASCII with `--ascii`
//! for terminals and fonts without braille, blocks or box drawing.

use ratatui::buffer::Buffer;
use ratatui::symbols;

use crate::run::RunStatus;

/// One set of glyphs.
#[derive(Debug, Clone)]
pub struct Symbols {
    pub ascii: bool,
    pub frozen: &'static str,
    pub trainable: &'static str,
    /// A request on the group is on its way to the worker.
    pub pending: &'static str,
    pub cursor: &'static str,
    pub marked: &'static str,
    pub bar_done: char,
    pub bar_left: char,
    pub sparkline: symbols::bar::Set<'static>,
    pub border: symbols::border::Set<'static>,
    pub chart: symbols::Marker,
    pub thaw: &'static str,
    pub resumed: &'static str,
}

const ASCII_BAR: symbols::bar::Set<'static> = symbols::bar::Set {
    full: "#",
    seven_eighths: "#",
    three_quarters: "=",
    five_eighths: "=",
    half: "-",
    three_eighths: "-",
    one_quarter: "_",
    one_eighth: "_",
    empty: " ",
};

const ASCII_BORDER: symbols::border::Set<'static> = symbols::border::Set {
    top_left: "+",
    top_right: "+",
    bottom_left: "+",
    bottom_right: "+",
    vertical_left: "|",
    vertical_right: "|",
    horizontal_top: "-",
    horizontal_bottom: "-",
};

impl Symbols {
    pub fn new(ascii: bool) -> Self {
        match ascii {
            false => Self {
                ascii,
                frozen: "❄",
                trainable: "·",
                pending: "…",
                cursor: "▶",
                marked: "◆",
                bar_done: '█',
                bar_left: '░',
                sparkline: symbols::bar::NINE_LEVELS,
                border: symbols::border::ROUNDED,
                chart: symbols::Marker::Braille,
                thaw: "☀",
                resumed: "↻",
            },
            true => Self {
                ascii,
                frozen: "F",
                trainable: ".",
                pending: "~",
                cursor: ">",
                marked: "*",
                bar_done: '#',
                bar_left: '-',
                sparkline: ASCII_BAR,
                border: ASCII_BORDER,
                chart: symbols::Marker::Dot,
                thaw: "T",
                resumed: "R",
            },
        }
    }

    /// The status as a symbol, so that no state is told by colour alone.
    pub fn status(&self, status: RunStatus) -> &'static str {
        use RunStatus::*;
        match (status, self.ascii) {
            (Running, false) => "▶",
            (Running, true) => ">",
            (Queued, false) => "◌",
            (Queued, true) => "o",
            (Waiting, false) => "⧗",
            (Waiting, true) => "w",
            (Paused, false) => "‖",
            (Paused, true) => "=",
            (Checkpointing, false) => "⤓",
            (Checkpointing, true) => "v",
            (Finished, false) => "✓",
            (Finished, true) => "+",
            (Failed, false) => "✗",
            (Failed, true) => "x",
            (Stopped, false) => "■",
            (Stopped, true) => "#",
            (Interrupted, false) => "↯",
            (Interrupted, true) => "!",
        }
    }

    /// A progress bar `width` cells wide.
    pub fn bar(&self, fraction: f64, width: usize) -> String {
        let done = ((fraction.clamp(0.0, 1.0) * width as f64).round() as usize).min(width);
        std::iter::repeat_n(self.bar_done, done)
            .chain(std::iter::repeat_n(self.bar_left, width - done))
            .collect()
    }
}

/// Replaces what widgets drew outside ASCII (chart dots, arrows in help text) with ASCII, so
/// that `--ascii` holds for every cell.
pub fn asciify(buffer: &mut Buffer) {
    for cell in buffer.content.iter_mut() {
        let symbol = cell.symbol();
        if symbol.is_ascii() {
            continue;
        }
        let plain = match symbol.chars().next().unwrap_or(' ') {
            '•' | '◆' | '\u{2800}'..='\u{28ff}' => "*",
            '·' => ".",
            '❄' => "F",
            '☀' => "T",
            '↻' => "R",
            '▶' => ">",
            '✗' | '×' => "x",
            '↑' => "^",
            '↓' => "v",
            '÷' => "/",
            '…' => "~",
            '─' | '━' => "-",
            '│' | '┃' => "|",
            '┌' | '┐' | '└' | '┘' | '├' | '┤' | '┬' | '┴' | '┼' | '╭' | '╮' | '╰' | '╯' => {
                "+"
            }
            '█' | '▇' | '▆' | '▅' | '▄' | '▃' | '▂' | '▁' | '▌' | '▐' | '▀' => {
                "#"
            }
            _ => "?",
        };
        cell.set_symbol(plain);
    }
}
