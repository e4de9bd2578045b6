//! Colour themes: a TOML file names a colour per role of the dashboard.
//!
//! Four themes are built in (`dark`, the default, `light`, `high-contrast` and `mono`, from the
//! repository's `themes/`), and the user's live in the config directory's `themes/`, one file
//! per theme. A theme file reads:
//!
//! ```toml
//! # the theme's name is the file's name (mine.toml -> "mine")
//! base = "light"        # optional: where the roles not named here come from (see below)
//! [colors]
//! text = "#d0d0d0"      # "#rrggbb", a colour name or a palette index 0-255
//! selected = "#304060"  # the selected row's background
//! running = "green"
//! frozen = 117
//! series = ["#6cb6ff", "#ff9f5f"]  # compare chart lines, cycled; at least one
//! ```
//!
//! The colour names are black red green yellow blue magenta cyan gray darkgray lightred
//! lightgreen lightyellow lightblue lightmagenta lightcyan white reset. The keys of `[colors]`
//! are the [`Role`]s in snake_case (text, dim, title, border, header, selected, running, queued,
//! waiting, paused, checkpointing, finished, failed, stopped, interrupted, frozen, trainable,
//! train_loss, val_loss, val_accuracy, pending, ok, warning, error, marker) and `series`.
//!
//! A built-in file names every role. A user file names only what it changes: a file named after
//! a built-in (`dark.toml`) changes that built-in; any other is a new theme built on `base`, a
//! built-in with the user's changes to it (default `dark`). A file with bad TOML, an unknown key,
//! a colour that is not one or an unknown base is skipped with a message; the others still load.
//!
//! Colours are shown at the terminal's [`ColorDepth`]: 256- and 16-colour terminals get the
//! nearest palette colour, and with NO_COLOR the roles that must stand out get a modifier
//! instead (the selected row reversed, titles and failures bold).

mod color;
mod file;
mod role;

use std::path::{Path, PathBuf};

use ratatui::style::{Color, Modifier, Style};

pub use color::ColorDepth;
pub use role::Role;

use file::ThemeFile;

/// The built-in themes, in the order the `t` key cycles them; the first is the default.
const BUILTIN: [(&str, &str); 4] = [
    ("dark", include_str!("../../../themes/dark.toml")),
    ("light", include_str!("../../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../../themes/high-contrast.toml"),
    ),
    ("mono", include_str!("../../../themes/mono.toml")),
];

/// A theme: a colour for every role, and the palette of compare chart lines.
#[derive(Debug, Clone)]
pub struct Theme {
    /// The theme's name: its file's name without `.toml`.
    pub name: String,
    colors: [Color; Role::ALL.len()],
    /// Never empty: a theme file's series has at least one colour.
    series: Vec<Color>,
}

impl Theme {
    /// The foreground style of a role at a colour depth (Selected: a background style).
    pub fn style(&self, role: Role, depth: ColorDepth) -> Style {
        let style = match depth.convert(self.colors[role as usize]) {
            Some(color) if role == Role::Selected => Style::default().bg(color),
            Some(color) => Style::default().fg(color),
            None => Style::default(),
        };
        style.add_modifier(modifier(role, depth))
    }

    /// The n-th colour of the series palette (compare chart lines; cycles), as a style at this depth.
    pub fn series(&self, n: usize, depth: ColorDepth) -> Style {
        let color = self.series.get(n % self.series.len().max(1)).copied();
        match color.and_then(|color| depth.convert(color)) {
            Some(color) => Style::default().fg(color),
            None => Style::default(),
        }
    }

    /// This theme named `name`, with the colours `file` names in place of its own.
    fn changed_by(&self, name: &str, file: &ThemeFile) -> Theme {
        let mut theme = self.clone();
        theme.name = name.to_string();
        for (color, changed) in theme.colors.iter_mut().zip(file.colors) {
            if let Some(changed) = changed {
                *color = changed;
            }
        }
        if let Some(series) = &file.series {
            theme.series = series.clone();
        }
        theme
    }
}

/// What a role adds to its colour; without colour, it is all that sets a role apart.
fn modifier(role: Role, depth: ColorDepth) -> Modifier {
    match (role, depth) {
        (Role::Title, _) => Modifier::BOLD,
        (Role::Selected, ColorDepth::None) => Modifier::REVERSED,
        (Role::Failed | Role::Error, ColorDepth::None) => Modifier::BOLD,
        _ => Modifier::empty(),
    }
}

/// The built-in themes plus the user's, by name.
#[derive(Debug, Clone)]
pub struct Themes {
    /// Built-ins first, in `BUILTIN` order, then the user's sorted by name.
    themes: Vec<Theme>,
}

impl Themes {
    /// The built-in themes (embedded with include_str! from themes/*.toml, so the binary needs no
    /// files) and the user's from `dir` (the config directory's `themes/`, may not exist).
    /// Returns the themes and one message per file that could not be used.
    pub fn load(dir: Option<&Path>) -> (Self, Vec<String>) {
        let mut themes = Self::builtin();
        let Some(dir) = dir else {
            return (themes, Vec::new());
        };
        let (files, mut messages) = theme_files(dir);
        let shipped = themes.themes.clone();
        // Changes to built-ins first, so that a new theme's base includes them.
        let (changes, new): (Vec<_>, Vec<_>) =
            files.into_iter().partition(|(name, _)| is_builtin(name));
        for (name, path) in changes {
            match user_theme(&name, &path, &shipped) {
                Ok(theme) => {
                    if let Some(slot) = themes.themes.iter_mut().find(|t| t.name == name) {
                        *slot = theme;
                    }
                }
                Err(reason) => messages.push(format!("theme file {}: {reason}", path.display())),
            }
        }
        let mut added = Vec::new();
        for (name, path) in new {
            match user_theme(&name, &path, &themes.themes) {
                Ok(theme) => added.push(theme),
                Err(reason) => messages.push(format!("theme file {}: {reason}", path.display())),
            }
        }
        added.sort_by(|a, b| a.name.cmp(&b.name));
        themes.themes.extend(added);
        (themes, messages)
    }

    /// Only the built-ins.
    pub fn builtin() -> Self {
        let themes = BUILTIN
            .iter()
            .map(|(name, text)| {
                builtin_theme(name, text)
                    .unwrap_or_else(|e| panic!("built-in theme themes/{name}.toml: {e}"))
            })
            .collect();
        Self { themes }
    }

    /// The theme of that name, or an error message listing the names there are.
    pub fn get(&self, name: &str) -> Result<&Theme, String> {
        self.themes.iter().find(|t| t.name == name).ok_or_else(|| {
            format!(
                "unknown theme \"{name}\": the themes are {}",
                self.names().join(", ")
            )
        })
    }

    /// Names in order: built-ins first (dark, light, high-contrast, mono), then user themes sorted.
    pub fn names(&self) -> Vec<&str> {
        self.themes.iter().map(|t| t.name.as_str()).collect()
    }

    /// The name after `current` in that order, wrapping (what the `t` key does); the first
    /// theme's if `current` is not a theme.
    pub fn next_after(&self, current: &str) -> &str {
        let at = self.themes.iter().position(|t| t.name == current);
        let next = at.map_or(0, |at| (at + 1) % self.themes.len());
        self.themes.get(next).map_or("dark", |t| t.name.as_str())
    }
}

fn is_builtin(name: &str) -> bool {
    BUILTIN.iter().any(|(builtin, _)| *builtin == name)
}

fn builtin_theme(name: &str, text: &str) -> Result<Theme, String> {
    let file = ThemeFile::parse(text)?;
    let missing = file.missing();
    if !missing.is_empty() {
        return Err(format!("names no colour for {}", missing.join(", ")));
    }
    if file.base.is_some() {
        return Err("a built-in names every colour and no base".to_string());
    }
    let blank = Theme {
        name: String::new(),
        colors: [Color::Reset; Role::ALL.len()],
        series: Vec::new(),
    };
    Ok(blank.changed_by(name, &file))
}

/// A user's theme file on top of its base, one of `bases` (the built-ins).
fn user_theme(name: &str, path: &Path, bases: &[Theme]) -> Result<Theme, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let file = ThemeFile::parse(&text)?;
    let base = match file.base.as_deref() {
        Some(base) => base,
        None if is_builtin(name) => name,
        None => BUILTIN[0].0,
    };
    let base = bases
        .iter()
        .find(|t| t.name == base && is_builtin(base))
        .ok_or_else(|| {
            let names: Vec<&str> = BUILTIN.iter().map(|(name, _)| *name).collect();
            format!(
                "base = \"{base}\" is not a built-in theme: use one of {}",
                names.join(", ")
            )
        })?;
    Ok(base.changed_by(name, &file))
}

/// The `.toml` files in `dir` as (theme name, path), sorted by name, and a message for each
/// entry that could not be read; a missing directory has none.
fn theme_files(dir: &Path) -> (Vec<(String, PathBuf)>, Vec<String>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (Vec::new(), Vec::new()),
        Err(e) => {
            return (
                Vec::new(),
                vec![format!("theme directory {}: {e}", dir.display())],
            );
        }
    };
    let mut files = Vec::new();
    let mut messages = Vec::new();
    for entry in entries {
        let path = match entry {
            Ok(entry) => entry.path(),
            Err(e) => {
                messages.push(format!("theme directory {}: {e}", dir.display()));
                continue;
            }
        };
        if path.extension().is_none_or(|ext| ext != "toml") {
            continue;
        }
        match path.file_stem().and_then(|stem| stem.to_str()) {
            Some(name) => files.push((name.to_string(), path)),
            None => messages.push(format!(
                "theme file {}: the name is not UTF-8: name a theme file like mine.toml",
                path.display()
            )),
        }
    }
    files.sort();
    (files, messages)
}

#[cfg(test)]
mod tests;
