//! How a theme file writes a colour, and how a colour is shown at the terminal's colour depth.

use ratatui::style::Color;

/// What a theme file accepts as a colour, for messages about one it does not.
pub(super) const ACCEPTED: &str =
    r##"use "#rrggbb", a colour name (red, lightblue, ...) or 0-255"##;

/// The colour names a theme file accepts.
const NAMES: [(&str, Color); 17] = [
    ("black", Color::Black),
    ("red", Color::Red),
    ("green", Color::Green),
    ("yellow", Color::Yellow),
    ("blue", Color::Blue),
    ("magenta", Color::Magenta),
    ("cyan", Color::Cyan),
    ("gray", Color::Gray),
    ("darkgray", Color::DarkGray),
    ("lightred", Color::LightRed),
    ("lightgreen", Color::LightGreen),
    ("lightyellow", Color::LightYellow),
    ("lightblue", Color::LightBlue),
    ("lightmagenta", Color::LightMagenta),
    ("lightcyan", Color::LightCyan),
    ("white", Color::White),
    ("reset", Color::Reset),
];

/// The 16 ANSI colours with xterm's default values, in index order.
const ANSI16: [(Color, [u8; 3]); 16] = [
    (Color::Black, [0, 0, 0]),
    (Color::Red, [205, 0, 0]),
    (Color::Green, [0, 205, 0]),
    (Color::Yellow, [205, 205, 0]),
    (Color::Blue, [0, 0, 238]),
    (Color::Magenta, [205, 0, 205]),
    (Color::Cyan, [0, 205, 205]),
    (Color::Gray, [229, 229, 229]),
    (Color::DarkGray, [127, 127, 127]),
    (Color::LightRed, [255, 0, 0]),
    (Color::LightGreen, [0, 255, 0]),
    (Color::LightYellow, [255, 255, 0]),
    (Color::LightBlue, [92, 92, 255]),
    (Color::LightMagenta, [255, 0, 255]),
    (Color::LightCyan, [0, 255, 255]),
    (Color::White, [255, 255, 255]),
];

/// The channel levels of xterm's 6x6x6 colour cube (indices 16-231).
const CUBE: [u8; 6] = [0, 95, 135, 175, 215, 255];

/// How many colours the terminal shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorDepth {
    /// 24-bit colour: every "#rrggbb" as written.
    TrueColor,
    /// The xterm 256-colour palette.
    Ansi256,
    /// The 16 named ANSI colours.
    Ansi16,
    /// No colour at all: the dashboard is carried by text, symbols and modifiers.
    None,
}

impl ColorDepth {
    /// The depth the environment asks for, from NO_COLOR, TERM and COLORTERM.
    pub fn detect() -> Self {
        let var = |key: &str| std::env::var_os(key).map(|v| v.to_string_lossy().into_owned());
        Self::from_env(
            var("NO_COLOR").as_deref(),
            var("TERM").as_deref(),
            var("COLORTERM").as_deref(),
        )
    }

    /// The depth for these values of NO_COLOR, TERM and COLORTERM (`None`: unset).
    pub fn from_env(no_color: Option<&str>, term: Option<&str>, colorterm: Option<&str>) -> Self {
        // no-color.org: an empty NO_COLOR counts as unset.
        if no_color.is_some_and(|value| !value.is_empty()) || term == Some("dumb") {
            return Self::None;
        }
        let truecolor = |value: &str| {
            value.eq_ignore_ascii_case("truecolor") || value.eq_ignore_ascii_case("24bit")
        };
        if colorterm.is_some_and(truecolor) {
            Self::TrueColor
        } else if term.is_some_and(|term| term.contains("256color")) {
            Self::Ansi256
        } else {
            Self::Ansi16
        }
    }

    /// The colour as this depth shows it, or `None` where it shows no colour.
    pub(super) fn convert(self, color: Color) -> Option<Color> {
        match (self, color) {
            (Self::None, _) => None,
            (Self::TrueColor, _) => Some(color),
            (Self::Ansi256, Color::Rgb(r, g, b)) => Some(Color::Indexed(to_ansi256([r, g, b]))),
            (Self::Ansi256, _) => Some(color),
            (Self::Ansi16, Color::Rgb(r, g, b)) => Some(to_ansi16([r, g, b])),
            (Self::Ansi16, Color::Indexed(index)) => Some(match ANSI16.get(usize::from(index)) {
                Some((named, _)) => *named,
                None => to_ansi16(indexed_rgb(index)),
            }),
            (Self::Ansi16, _) => Some(color),
        }
    }
}

/// A theme file's colour value, or `None` if it is not one.
pub(super) fn parse(value: &toml::Value) -> Option<Color> {
    match value {
        toml::Value::Integer(index) => u8::try_from(*index).ok().map(Color::Indexed),
        toml::Value::String(text) => parse_text(text),
        _ => None,
    }
}

fn parse_text(text: &str) -> Option<Color> {
    let text = text.trim().to_ascii_lowercase();
    if let Some(hex) = text.strip_prefix('#') {
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let channel = |at: usize| u8::from_str_radix(&hex[at..at + 2], 16).ok();
        return Some(Color::Rgb(channel(0)?, channel(2)?, channel(4)?));
    }
    if let Ok(index) = text.parse::<u8>() {
        return Some(Color::Indexed(index));
    }
    NAMES
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, color)| *color)
}

/// The nearest xterm-256 index: the nearer of the colour cube's and the grey ramp's best.
fn to_ansi256(rgb: [u8; 3]) -> u8 {
    let level = |channel: u8| {
        (0..CUBE.len())
            .min_by_key(|&i| CUBE[i].abs_diff(channel))
            .unwrap_or(0) as u8
    };
    let [r, g, b] = rgb.map(level);
    let cube = 16 + 36 * r + 6 * g + b;
    let mean = rgb.iter().map(|&c| u32::from(c)).sum::<u32>() / 3;
    // The ramp runs 8, 18, ..., 238 in steps of 10.
    let step = (mean.saturating_sub(3) / 10).min(23) as u8;
    let grey = 232 + step;
    if distance(indexed_rgb(grey), rgb) < distance(indexed_rgb(cube), rgb) {
        grey
    } else {
        cube
    }
}

/// The nearest ANSI colour by hue, lightness and greyness rather than raw distance, so that a
/// soft blue stays blue instead of landing on dark grey.
fn to_ansi16(rgb: [u8; 3]) -> Color {
    let [r, g, b] = rgb.map(f32::from);
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let chroma = max - min;
    if max < 40.0 || chroma * 4.0 < max {
        let greys = [Color::Black, Color::DarkGray, Color::Gray, Color::White];
        return greys
            .into_iter()
            .filter_map(|grey| ANSI16.iter().find(|(named, _)| *named == grey))
            .min_by_key(|(_, value)| distance(*value, rgb))
            .map_or(Color::Gray, |(named, _)| *named);
    }
    let hue = if max == r {
        (g - b) / chroma
    } else if max == g {
        (b - r) / chroma + 2.0
    } else {
        (r - g) / chroma + 4.0
    };
    // Sectors of 60 degrees: red, yellow, green, cyan, blue, magenta.
    let sector = (hue.rem_euclid(6.0).round() as usize) % 6;
    let bright = max >= 240.0 || (max + min) / 2.0 >= 144.0;
    ANSI16[sector_index(sector) + if bright { 8 } else { 0 }].0
}

/// The ANSI index (0-7) of a hue sector (red, yellow, green, cyan, blue, magenta).
fn sector_index(sector: usize) -> usize {
    [1, 3, 2, 6, 4, 5][sector]
}

/// The xterm default value of a palette index.
fn indexed_rgb(index: u8) -> [u8; 3] {
    match index {
        0..=15 => ANSI16[usize::from(index)].1,
        16..=231 => {
            let i = index - 16;
            [
                CUBE[usize::from(i / 36)],
                CUBE[usize::from(i / 6 % 6)],
                CUBE[usize::from(i % 6)],
            ]
        }
        _ => [8 + 10 * (index - 232); 3],
    }
}

fn distance(a: [u8; 3], b: [u8; 3]) -> u32 {
    a.iter()
        .zip(b)
        .map(|(&x, y)| u32::from(x.abs_diff(y)).pow(2))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_from_env() {
        type D = ColorDepth;
        let cases = [
            (
                (Some("1"), Some("xterm-256color"), Some("truecolor")),
                D::None,
            ),
            ((Some(""), Some("xterm-256color"), None), D::Ansi256),
            ((None, Some("dumb"), Some("truecolor")), D::None),
            ((None, Some("xterm"), Some("truecolor")), D::TrueColor),
            ((None, Some("xterm"), Some("24bit")), D::TrueColor),
            ((None, Some("screen-256color"), None), D::Ansi256),
            ((None, Some("xterm"), None), D::Ansi16),
            ((None, None, None), D::Ansi16),
        ];
        for ((no_color, term, colorterm), expected) in cases {
            let depth = ColorDepth::from_env(no_color, term, colorterm);
            assert_eq!(depth, expected, "{no_color:?} {term:?} {colorterm:?}");
        }
    }

    #[test]
    fn parses_hex_names_and_indices() {
        let text = |s: &str| parse(&toml::Value::String(s.into()));
        assert_eq!(text("#FF8000"), Some(Color::Rgb(255, 128, 0)));
        assert_eq!(text("lightblue"), Some(Color::LightBlue));
        assert_eq!(text("42"), Some(Color::Indexed(42)));
        assert_eq!(parse(&toml::Value::Integer(255)), Some(Color::Indexed(255)));
        for bad in ["grean", "#ff80", "#gg0000", "#ff00001", "256", ""] {
            assert_eq!(text(bad), None, "{bad}");
        }
        assert_eq!(parse(&toml::Value::Integer(256)), None);
        assert_eq!(parse(&toml::Value::Boolean(true)), None);
    }

    #[test]
    fn rgb_to_256() {
        assert_eq!(to_ansi256([255, 0, 0]), 196);
        assert_eq!(to_ansi256([0, 0, 0]), 16);
        assert_eq!(to_ansi256([255, 255, 255]), 231);
        assert_eq!(to_ansi256([0x5f, 0x87, 0xaf]), 67);
        assert_eq!(to_ansi256([128, 128, 128]), 244);
        assert_eq!(to_ansi256([0x30, 0x30, 0x30]), 236);
        let depth = ColorDepth::Ansi256;
        assert_eq!(depth.convert(Color::Red), Some(Color::Red));
        assert_eq!(
            depth.convert(Color::Indexed(100)),
            Some(Color::Indexed(100))
        );
    }

    #[test]
    fn rgb_and_indices_to_16() {
        assert_eq!(to_ansi16([255, 0, 0]), Color::LightRed);
        assert_eq!(to_ansi16([128, 0, 0]), Color::Red);
        assert_eq!(to_ansi16([0x87, 0xcf, 0xff]), Color::LightCyan);
        assert_eq!(to_ansi16([0x5f, 0x87, 0xd7]), Color::LightBlue);
        assert_eq!(to_ansi16([0x30, 0x40, 0x60]), Color::Blue);
        assert_eq!(to_ansi16([0x87, 0xd7, 0x87]), Color::LightGreen);
        assert_eq!(to_ansi16([0x10, 0x10, 0x10]), Color::Black);
        assert_eq!(to_ansi16([0x80, 0x80, 0x80]), Color::DarkGray);
        assert_eq!(to_ansi16([0xd0, 0xd0, 0xd0]), Color::Gray);
        assert_eq!(to_ansi16([0xff, 0xff, 0xff]), Color::White);
        let depth = ColorDepth::Ansi16;
        assert_eq!(depth.convert(Color::Indexed(9)), Some(Color::LightRed));
        assert_eq!(depth.convert(Color::Indexed(196)), Some(Color::LightRed));
        assert_eq!(depth.convert(Color::Indexed(244)), Some(Color::DarkGray));
        assert_eq!(depth.convert(Color::Cyan), Some(Color::Cyan));
        assert_eq!(ColorDepth::None.convert(Color::Cyan), None);
    }
}
