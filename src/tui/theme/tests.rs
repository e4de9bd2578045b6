use std::fs;

use super::*;

const DEPTHS: [ColorDepth; 4] = [
    ColorDepth::TrueColor,
    ColorDepth::Ansi256,
    ColorDepth::Ansi16,
    ColorDepth::None,
];

fn user_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (name, text) in files {
        fs::write(dir.path().join(name), text).expect("a theme file");
    }
    dir
}

fn fg(theme: &Theme, role: Role) -> Option<Color> {
    theme.style(role, ColorDepth::TrueColor).fg
}

#[test]
fn every_builtin_names_every_role() {
    for (name, text) in BUILTIN {
        let file = ThemeFile::parse(text).unwrap_or_else(|e| panic!("themes/{name}.toml: {e}"));
        assert_eq!(file.missing(), Vec::<&str>::new(), "themes/{name}.toml");
        assert!(file.base.is_none(), "themes/{name}.toml names a base");
    }
    assert_eq!(
        Themes::builtin().names(),
        ["dark", "light", "high-contrast", "mono"]
    );
}

#[test]
fn no_color_depth_gives_modifiers_only() {
    let themes = Themes::builtin();
    for name in themes.names() {
        let theme = themes.get(name).expect("a built-in");
        for role in Role::ALL {
            let style = theme.style(role, ColorDepth::None);
            assert_eq!((style.fg, style.bg), (None, None), "{name} {role:?}");
        }
        for n in 0..10 {
            assert_eq!(theme.series(n, ColorDepth::None), Style::default());
        }
        let style = |role| theme.style(role, ColorDepth::None).add_modifier;
        assert_eq!(style(Role::Selected), Modifier::REVERSED);
        assert_eq!(style(Role::Title), Modifier::BOLD);
        assert_eq!(style(Role::Failed), Modifier::BOLD);
        assert_eq!(style(Role::Error), Modifier::BOLD);
        assert_eq!(style(Role::Frozen), Modifier::empty());
    }
}

#[test]
fn styles_at_each_depth() {
    let dark = Themes::builtin().get("dark").cloned().expect("dark");
    for depth in DEPTHS {
        assert!(
            dark.style(Role::Title, depth)
                .add_modifier
                .contains(Modifier::BOLD)
        );
    }
    let selected = dark.style(Role::Selected, ColorDepth::TrueColor);
    assert_eq!(
        (selected.fg, selected.bg),
        (None, Some(Color::Rgb(0x30, 0x40, 0x60)))
    );
    assert_eq!(
        dark.style(Role::Selected, ColorDepth::Ansi16).bg,
        Some(Color::Blue)
    );
    assert!(matches!(
        dark.style(Role::Frozen, ColorDepth::Ansi256).fg,
        Some(Color::Indexed(_))
    ));
    assert_eq!(
        dark.style(Role::Failed, ColorDepth::TrueColor).add_modifier,
        Modifier::empty()
    );
    assert_eq!(
        dark.series(0, ColorDepth::TrueColor),
        dark.series(8, ColorDepth::TrueColor)
    );
    assert_ne!(
        dark.series(0, ColorDepth::TrueColor),
        dark.series(1, ColorDepth::TrueColor)
    );
}

#[test]
fn a_user_file_changes_only_what_it_names() {
    let dir = user_dir(&[("dark.toml", "[colors]\nrunning = \"#010203\"\n")]);
    let (themes, messages) = Themes::load(Some(dir.path()));
    assert_eq!(messages, Vec::<String>::new());
    let (changed, shipped) = (themes.get("dark").expect("dark"), Themes::builtin());
    let shipped = shipped.get("dark").expect("dark");
    for role in Role::ALL {
        let expected = if role == Role::Running {
            Some(Color::Rgb(1, 2, 3))
        } else {
            fg(shipped, role)
        };
        assert_eq!(fg(changed, role), expected, "{role:?}");
    }
    assert_eq!(changed.series, shipped.series);
    assert_eq!(themes.names(), ["dark", "light", "high-contrast", "mono"]);
}

#[test]
fn a_new_theme_inherits_its_base() {
    let dir = user_dir(&[
        ("zebra.toml", "[colors]\ntext = \"white\"\n"),
        (
            "mine.toml",
            "base = \"light\"\n[colors]\nfrozen = \"cyan\"\nseries = [\"red\"]\n",
        ),
        ("dark.toml", "[colors]\ndim = \"#010101\"\n"),
        ("notes.txt", "not a theme"),
    ]);
    let (themes, messages) = Themes::load(Some(dir.path()));
    assert_eq!(messages, Vec::<String>::new());
    let builtin = Themes::builtin();
    let (mine, light) = (
        themes.get("mine").expect("mine"),
        builtin.get("light").expect("light"),
    );
    assert_eq!(fg(mine, Role::Frozen), Some(Color::Cyan));
    assert_eq!(fg(mine, Role::Running), fg(light, Role::Running));
    assert_eq!(mine.series(3, ColorDepth::TrueColor).fg, Some(Color::Red));
    // A new theme's default base is dark with the user's own changes to it.
    let zebra = themes.get("zebra").expect("zebra");
    assert_eq!(fg(zebra, Role::Text), Some(Color::White));
    assert_eq!(fg(zebra, Role::Dim), Some(Color::Rgb(1, 1, 1)));

    assert_eq!(
        themes.names(),
        ["dark", "light", "high-contrast", "mono", "mine", "zebra"]
    );
    assert_eq!(themes.next_after("dark"), "light");
    assert_eq!(themes.next_after("mono"), "mine");
    assert_eq!(themes.next_after("zebra"), "dark");
    assert_eq!(themes.next_after("gone"), "dark");
}

#[test]
fn bad_files_are_skipped_with_a_message() {
    let dir = user_dir(&[
        ("toml.toml", "[colors\ntext = 1\n"),
        ("role.toml", "[colors]\nrunnin = \"red\"\n"),
        ("colour.toml", "[colors]\nrunning = \"grean\"\n"),
        ("base.toml", "base = \"solarized\"\n"),
        ("light.toml", "[colors]\nfrozen = 300\n"),
        ("good.toml", "[colors]\nok = \"green\"\n"),
    ]);
    let (themes, messages) = Themes::load(Some(dir.path()));
    assert_eq!(
        themes.names(),
        ["dark", "light", "high-contrast", "mono", "good"]
    );
    let at = |file: &str| format!("theme file {}: ", dir.path().join(file).display());
    let expected = [
        format!(
            r##"{}colors.frozen: 300 is not a colour: use "#rrggbb", a colour name (red, lightblue, ...) or 0-255"##,
            at("light.toml")
        ),
        format!(
            "{}base = \"solarized\" is not a built-in theme: use one of dark, light, high-contrast, mono",
            at("base.toml")
        ),
        format!(
            r##"{}colors.running: "grean" is not a colour: use "#rrggbb", a colour name (red, lightblue, ...) or 0-255"##,
            at("colour.toml")
        ),
    ];
    for message in expected {
        assert!(
            messages.contains(&message),
            "{message:?} not in {messages:#?}"
        );
    }
    let starts = |prefix: String| messages.iter().any(|m| m.starts_with(&prefix));
    assert!(
        starts(at("role.toml") + "colors.runnin: unknown role:"),
        "{messages:#?}"
    );
    assert!(starts(at("toml.toml") + "line 1: "), "{messages:#?}");
    assert_eq!(messages.len(), 5, "{messages:#?}");
    let light = themes.get("light").expect("light");
    assert_eq!(
        fg(light, Role::Frozen),
        fg(Themes::builtin().get("light").expect("light"), Role::Frozen)
    );
}

#[test]
fn a_missing_directory_is_no_error() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (themes, messages) = Themes::load(Some(&dir.path().join("themes")));
    assert_eq!((themes.names().len(), messages.len()), (4, 0));
    assert_eq!(Themes::load(None).0.names().len(), 4);
}

#[test]
fn unknown_theme_lists_the_names() {
    let error = Themes::builtin().get("nope").expect_err("no such theme");
    assert_eq!(
        error,
        "unknown theme \"nope\": the themes are dark, light, high-contrast, mono"
    );
}
