//! One theme file as written: the roles it names, its series palette and its base.

use ratatui::style::Color;

use super::color::{self, ACCEPTED};
use super::role::Role;

/// The fields a theme file names; a user file may name any of them, a built-in names all.
#[derive(Debug)]
pub(super) struct ThemeFile {
    /// The theme whose colours fill the roles this file does not name.
    pub base: Option<String>,
    /// The colour of each role, indexed by `Role as usize`; `None` where the file names none.
    pub colors: [Option<Color>; Role::ALL.len()],
    pub series: Option<Vec<Color>>,
}

impl ThemeFile {
    /// Reads a theme file's text; an error says which key or line is wrong and what is accepted.
    pub fn parse(text: &str) -> Result<Self, String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| toml_message(text, &e))?;
        let mut file = ThemeFile {
            base: None,
            colors: [None; Role::ALL.len()],
            series: None,
        };
        for (key, value) in &table {
            match (key.as_str(), value) {
                ("base", toml::Value::String(base)) => file.base = Some(base.clone()),
                ("base", other) => {
                    return Err(format!(
                        "base: {other} is not a theme name: write base = \"dark\""
                    ));
                }
                ("colors", toml::Value::Table(colors)) => file.read_colors(colors)?,
                ("colors", _) => {
                    return Err("colors: must be a [colors] table of role = colour".to_string());
                }
                (other, _) => {
                    return Err(format!(
                        "unknown key \"{other}\": a theme file holds base = \"...\" and a [colors] table \
                         (its name comes from the file name)"
                    ));
                }
            }
        }
        Ok(file)
    }

    /// The keys a built-in must name but this file does not.
    pub fn missing(&self) -> Vec<&'static str> {
        let roles = Role::ALL
            .into_iter()
            .filter(|role| self.colors[*role as usize].is_none());
        let series = self.series.is_none().then_some("series");
        roles.map(Role::key).chain(series).collect()
    }

    fn read_colors(&mut self, colors: &toml::Table) -> Result<(), String> {
        for (key, value) in colors {
            if key == "series" {
                self.series = Some(read_series(value)?);
                continue;
            }
            let Some(role) = Role::from_key(key) else {
                let roles: Vec<&str> = Role::ALL.into_iter().map(Role::key).collect();
                return Err(format!(
                    "colors.{key}: unknown role: the roles are {} and series",
                    roles.join(", ")
                ));
            };
            let color = color::parse(value)
                .ok_or_else(|| format!("colors.{key}: {value} is not a colour: {ACCEPTED}"))?;
            self.colors[role as usize] = Some(color);
        }
        Ok(())
    }
}

fn read_series(value: &toml::Value) -> Result<Vec<Color>, String> {
    let toml::Value::Array(items) = value else {
        return Err(format!(
            "colors.series: {value} is not a list: write series = [\"#rrggbb\", ...] with at least one colour"
        ));
    };
    if items.is_empty() {
        return Err("colors.series: is empty: give at least one colour".to_string());
    }
    items
        .iter()
        .enumerate()
        .map(|(at, item)| {
            color::parse(item)
                .ok_or_else(|| format!("colors.series[{at}]: {item} is not a colour: {ACCEPTED}"))
        })
        .collect()
}

/// A TOML error on one line, with the line number where the parser gives a position.
fn toml_message(text: &str, error: &toml::de::Error) -> String {
    let line = error
        .span()
        .and_then(|span| text.get(..span.start))
        .map(|before| before.matches('\n').count() + 1);
    let message = error.message().trim_end().replace('\n', "; ");
    match line {
        Some(line) => format!("line {line}: {message}"),
        None => format!("not valid TOML: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        ThemeFile::parse(text).expect_err(text)
    }

    #[test]
    fn names_only_what_is_written() {
        let file =
            ThemeFile::parse("base = \"light\"\n[colors]\nrunning = 2\nseries = [\"red\"]\n")
                .expect("a valid file");
        assert_eq!(file.base.as_deref(), Some("light"));
        assert_eq!(file.colors[Role::Running as usize], Some(Color::Indexed(2)));
        assert_eq!(file.series, Some(vec![Color::Red]));
        assert_eq!(file.missing().len(), Role::ALL.len() - 1);
    }

    #[test]
    fn errors_name_the_key_and_what_is_accepted() {
        assert_eq!(
            error("[colors]\nrunning = \"grean\"\n"),
            r##"colors.running: "grean" is not a colour: use "#rrggbb", a colour name (red, lightblue, ...) or 0-255"##
        );
        assert!(
            error("[colors]\nrunnin = \"red\"\n")
                .starts_with("colors.runnin: unknown role: the roles are text, dim,")
        );
        assert!(error("name = \"x\"\n").starts_with("unknown key \"name\""));
        assert!(error("[colors]\nseries = []\n").starts_with("colors.series: is empty"));
        assert!(error("[colors]\nseries = [\"red\", \"nope\"]\n").starts_with("colors.series[1]:"));
        assert!(error("colors = 3\n").starts_with("colors: must be a [colors] table"));
        assert!(error("base = 1\n").starts_with("base: 1 is not a theme name"));
    }

    #[test]
    fn toml_errors_give_the_line() {
        let message = error("[colors]\ntext = \"#ffffff\"\nrunning = \n");
        assert!(message.starts_with("line 3: "), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }
}
