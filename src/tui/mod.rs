//! The dashboard: `thaw attach`. Every run of the daemon (or of one session) with its loss as
//! a sparkline, a run in detail, runs compared, and single keys that freeze and thaw layer
//! groups, pause, stop and checkpoint, all sent to the daemon as requests.

pub mod app;
pub mod board;
mod host;
pub mod keys;
mod runtime;
pub mod symbols;
pub mod theme;
pub mod views;

use std::io::IsTerminal;

use anyhow::{Result, bail};

use crate::paths::Paths;
use app::{App, Notice, Popup};
use theme::{ColorDepth, Role, Themes};

/// What `thaw attach` was asked for.
#[derive(Debug, Clone, Default)]
pub struct AttachOptions {
    /// Only this session's runs.
    pub session: Option<String>,
    /// A theme name; default: `theme` in config.toml, else dark.
    pub theme: Option<String>,
    /// ASCII instead of braille, blocks and box drawing.
    pub ascii: bool,
}

/// Attaches the dashboard to the running daemon until the user detaches.
pub fn attach(paths: &Paths, options: AttachOptions) -> Result<()> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        bail!("the dashboard needs a terminal: `thaw status` prints the runs as text");
    }
    let app = prepare(paths, &options);
    runtime::run(app, paths, options.session)
}

/// The app with its themes: a bad theme file or an unknown theme name falls back and says
/// so in the footer.
pub fn prepare(paths: &Paths, options: &AttachOptions) -> App {
    let (themes, mut messages) = Themes::load(Some(&paths.config.join("themes")));
    let asked = options
        .theme
        .clone()
        .or_else(|| configured_theme(paths, &mut messages));
    let theme = match asked {
        Some(name) => match themes.get(&name) {
            Ok(_) => name,
            Err(why) => {
                messages.push(format!("{why}; using dark"));
                "dark".to_string()
            }
        },
        None => "dark".to_string(),
    };
    let mut app = App::new(themes, theme, ColorDepth::detect(), options.ascii);
    if let Some(first) = messages.first() {
        app.notice = Some(Notice {
            text: first.clone(),
            role: Role::Warning,
        });
        app.popup = Some(Popup::Messages(messages));
    }
    app
}

/// `theme = "NAME"` in config.toml, if set.
fn configured_theme(paths: &Paths, messages: &mut Vec<String>) -> Option<String> {
    let path = paths.config.join("config.toml");
    let text = std::fs::read_to_string(&path).ok()?;
    let table: toml::Table = match toml::from_str(&text) {
        Ok(table) => table,
        Err(e) => {
            messages.push(format!("{} is not valid TOML: {e}", path.display()));
            return None;
        }
    };
    match table.get("theme")? {
        toml::Value::String(name) => Some(name.clone()),
        other => {
            messages.push(format!(
                "{}: `theme` must be a theme's name in quotes, not {other}",
                path.display()
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests;
