//! The dashboard for real: `thaw attach` in a terminal of a private tmux server, attached to a
//! daemon in a private THAW_HOME whose resnet-mini runs train; keys go in with
//! `tmux send-keys` and the screen is read back with `tmux capture-pane`.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::events;
use thaw::protocol::RunInfo;
use thaw::run::RunStatus;

/// A session of tiny resnet-mini runs that train for longer than any test here.
fn session(name: &str, runs: &[&str]) -> String {
    let mut text = format!(
        r#"name = "{name}"
[defaults]
model = "resnet-mini"
data = "demo:shapes-small"
image_size = 16
batch_size = 16
device = "flex"
lr = 2e-3
optimizer = "adam"
seed = 7
epochs = 400
checkpoint_every_steps = 50
log_every_steps = 2
"#
    );
    for run in runs {
        text.push_str(&format!("[[runs]]\nname = \"{run}\"\n"));
    }
    text
}

impl Daemon {
    /// Waits until the run has taken `steps` more steps than it had.
    fn wait_advance(&self, name: &str, steps: usize) -> RunInfo {
        let from = self.run(name).step;
        self.wait_run(name, 60, &format!("{steps} steps past {from}"), |r| {
            r.status == RunStatus::Running && r.step >= from + steps
        })
    }

    /// `thaw attach`, in a terminal of `tmux`, with `env` (`NAME=value`) and `args`; when it
    /// ends the shell prints `DETACHED` and whether the terminal is back in cooked mode.
    fn attach_command(&self, env: &[&str], args: &[&str]) -> String {
        let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
        let home = self.home.path().to_str().expect("a UTF-8 temp dir");
        format!(
            "env -u NO_COLOR -u COLORTERM THAW_HOME={} TERM=xterm-256color {} {} attach {}; \
             echo \"DETACHED $(stty -a | tr -s ' ;' '\\n\\n' \
             | grep -x -e icanon -e -icanon -e echo -e -echo | tr '\\n' ' ')\"; exec sleep 600",
            quote(home),
            env.join(" "),
            quote(env!("CARGO_BIN_EXE_thaw")),
            args.join(" ")
        )
    }

    /// The `thaw attach` processes of this THAW_HOME.
    fn dashboards(&self) -> Vec<u32> {
        self.processes()
            .into_iter()
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|cmd| cmd.split(|&b| b == 0).any(|arg| arg == b"attach"))
            })
            .collect()
    }
}

/// A tmux server of its own (`-L`, no config file), so that no test touches a user's tmux;
/// dropping it (also when a test fails) kills the server and the terminals in it.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(tag: &str) -> Self {
        match Command::new("tmux").arg("-V").output() {
            Ok(out) if out.status.success() => {}
            other => panic!(
                "the dashboard tests need tmux (CI installs it: apt-get install tmux); \
                 `tmux -V` gave {other:?}"
            ),
        }
        Self {
            socket: format!("thaw-test-{}-{tag}", std::process::id()),
        }
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX")
            .stdin(Stdio::null())
            .output()
            .expect("run tmux")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.tmux(args);
        assert!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A terminal of `width` x `height` running `command`, in session `name`.
    fn open(&self, name: &str, width: u16, height: u16, command: &str) {
        let (width, height) = (width.to_string(), height.to_string());
        self.ok(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            &width,
            "-y",
            &height,
            command,
        ]);
    }

    /// The terminal's text.
    fn screen(&self, name: &str) -> String {
        self.ok(&["capture-pane", "-p", "-t", name])
    }

    /// The terminal's text with its colours and attributes as escape sequences.
    fn styled_screen(&self, name: &str) -> String {
        self.ok(&["capture-pane", "-p", "-e", "-t", name])
    }

    fn keys(&self, name: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", name];
        args.extend(keys);
        self.ok(&args);
    }

    /// A pane variable such as `#{alternate_on}`.
    fn pane(&self, name: &str, format: &str) -> String {
        self.ok(&["display-message", "-p", "-t", name, format])
            .trim()
            .to_string()
    }

    /// Waits until the screen satisfies `cond`; the screen then.
    fn wait(&self, name: &str, secs: u64, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen(name);
            if cond(&screen) {
                return screen;
            }
            assert!(
                start.elapsed() < Duration::from_secs(secs),
                "timed out waiting for {what}; the screen of {name}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends `q` and waits for the shell after `thaw attach` to say so.
    fn detach(&self, name: &str) -> String {
        self.keys(name, &["q"]);
        let screen = self.wait(name, 15, "the dashboard to exit", |s| {
            s.contains("DETACHED")
        });
        assert!(!screen.contains("panicked"), "{screen}");
        screen
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let socket = self.tmux(&["display-message", "-p", "#{socket_path}"]);
        let _ = self.tmux(&["kill-server"]);
        // The server leaves its socket file behind.
        let path = String::from_utf8_lossy(&socket.stdout);
        if socket.status.success() && path.contains(&self.socket) {
            let _ = std::fs::remove_file(path.trim());
        }
    }
}

/// The line that starts with `name`, after borders and the cursor: a run's row of the runs
/// table, or a group's row of the groups pane.
fn row<'a>(screen: &'a str, name: &str) -> Option<&'a str> {
    screen.lines().find(|line| {
        line.trim_start_matches(['│', '|', '▶', '>', ' '])
            .split_whitespace()
            .next()
            == Some(name)
    })
}

fn row_has(screen: &str, name: &str, text: &str) -> bool {
    row(screen, name).is_some_and(|r| r.contains(text))
}

/// The train-loss sparkline of a run's row: the word after the progress percentage.
fn sparkline(row: &str) -> &str {
    let words: Vec<&str> = row.split_whitespace().collect();
    words
        .iter()
        .position(|w| w.ends_with('%'))
        .and_then(|at| words.get(at + 1))
        .copied()
        .unwrap_or("")
}

/// Every colour an SGR sequence of a `capture-pane -e` screen sets: `31`, `38;5;214`,
/// `48;2;1;2;3`; the defaults (39, 49) are not colours.
fn colours(styled: &str) -> Vec<String> {
    let mut found = Vec::new();
    for sequence in styled.split("\x1b[").skip(1) {
        let Some(end) = sequence.find('m') else {
            continue;
        };
        let params: Vec<&str> = sequence[..end].split(';').collect();
        let mut i = 0;
        while i < params.len() {
            let len = match params[i] {
                "38" | "48" | "58" if params.get(i + 1) == Some(&"2") => 5,
                "38" | "48" | "58" => 3,
                p if matches!(p.parse(), Ok(30..=37 | 40..=47 | 90..=97 | 100..=107)) => 1,
                _ => {
                    i += 1;
                    continue;
                }
            };
            found.push(params[i..(i + len).min(params.len())].join(";"));
            i += len;
        }
    }
    found
}

/// Whether a colour of [`colours`] is one of the 16 every colour terminal has.
fn of_sixteen(colour: &str) -> bool {
    match colour.split(';').collect::<Vec<_>>()[..] {
        [_] => true,
        [_, "5", n] => n.parse::<u8>().is_ok_and(|n| n < 16),
        _ => false,
    }
}

/// Whether any SGR sequence turns on reverse video.
fn reverse_video(styled: &str) -> bool {
    styled
        .split("\x1b[")
        .filter_map(|s| s.split_once('m'))
        .any(|(params, _)| params.split(';').any(|p| p == "7"))
}

#[test]
fn a_freeze_from_the_dashboard_reaches_the_worker_and_detaching_leaves_training_going() {
    let d = Daemon::up(2);
    let tmux = Tmux::new("main");
    d.launch("session.toml", &session("dash", &["a", "b"]));

    tmux.open("first", 120, 30, &d.attach_command(&[], &[]));
    let screen = tmux.wait("first", 60, "both runs running", |s| {
        row_has(s, "a", "running") && row_has(s, "b", "running") && row(s, "layer1").is_some()
    });
    assert!(screen.starts_with(" thaw "), "{screen}");
    assert!(screen.contains("2 runs: 2 running · "), "{screen}");
    assert!(screen.contains(&format!("daemon {}", d.pid())), "{screen}");
    assert!(row_has(&screen, "a", "······"), "{screen}");
    assert!(row_has(&screen, "layer1", "· trainable"), "{screen}");

    // Run a, its groups pane, layer1, freeze.
    tmux.keys("first", &["k", "k", "Tab", "j"]);
    let screen = tmux.wait("first", 10, "the cursor on layer1", |s| {
        s.lines().any(|l| l.starts_with("│▶layer1"))
    });
    let keys = screen.trim_end().lines().last().unwrap_or_default();
    assert!(
        keys.contains("freeze/thaw") && keys.contains("q detach"),
        "{screen}"
    );
    tmux.keys("first", &["f"]);
    let screen = tmux.wait("first", 30, "layer1 frozen", |s| {
        s.contains("dash/a: froze layer1") && row_has(s, "layer1", "❄ frozen")
    });
    assert!(row_has(&screen, "a", "·❄····"), "{screen}");
    assert!(row_has(&screen, "b", "······"), "{screen}");
    let freeze = events(&d.home.run_dir("dash", "a"), "freeze");
    assert!(
        freeze.iter().any(|e| e.groups.contains(&"layer1".into())),
        "{freeze:?}"
    );
    let a = d.run("dash/a");
    let frozen: Vec<&str> = a
        .groups
        .iter()
        .filter(|g| g.frozen)
        .map(|g| g.name.as_str())
        .collect();
    assert_eq!(frozen, ["layer1"], "{a:?}");

    // q: the terminal comes back as it was, and training goes on.
    let screen = tmux.detach("first");
    assert!(
        screen.contains("DETACHED icanon echo"),
        "not cooked again:\n{screen}"
    );
    assert!(
        screen.contains("detached; 2 unfinished run(s) go on in the daemon"),
        "{screen}"
    );
    assert!(
        !screen.contains("runs") && row(&screen, "a").is_none(),
        "{screen}"
    );
    assert_eq!(tmux.pane("first", "#{alternate_on}"), "0");
    assert_eq!(
        tmux.pane("first", "#{cursor_flag}"),
        "1",
        "the cursor stays hidden"
    );
    d.wait_advance("dash/a", 5);

    // The terminal goes away mid-view (a dropped SSH connection): the dashboard ends with it,
    // the daemon and its workers do not.
    let (daemon, workers) = (d.pid(), (d.run("dash/a").pid, d.run("dash/b").pid));
    tmux.open("second", 120, 30, &d.attach_command(&[], &[]));
    tmux.wait("second", 60, "the runs", |s| row_has(s, "a", "·❄····"));
    assert_eq!(d.dashboards().len(), 1);
    tmux.ok(&["kill-session", "-t", "second"]);
    let start = Instant::now();
    while !d.dashboards().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "thaw attach outlived its terminal"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let a = d.wait_advance("dash/a", 5);
    let b = d.wait_advance("dash/b", 5);
    assert_eq!((a.pid, b.pid), workers, "the workers were restarted");
    assert_eq!(d.pid(), daemon, "the daemon was restarted");

    // Attached again: the same runs, with the loss history of before (a loss every 2 steps).
    d.wait_run("dash/a", 60, "20 losses logged", |r| r.step >= 40);
    tmux.open("third", 120, 30, &d.attach_command(&[], &[]));
    let screen = tmux.wait("third", 60, "the runs with their history", |s| {
        row_has(s, "a", "·❄····") && row(s, "b").is_some()
    });
    assert!(screen.contains("2 runs: 2 running"), "{screen}");
    for run in ["a", "b"] {
        let spark = sparkline(row(&screen, run).unwrap());
        assert!(
            spark.chars().count() >= 10 && spark.chars().all(|c| "▁▂▃▄▅▆▇█".contains(c)),
            "no loss history for {run}: {spark:?}\n{screen}"
        );
    }
    assert!(row_has(&screen, "b", "······"), "{screen}");

    // D removes a run, asking first; a training one must be stopped before.
    tmux.keys("third", &["j", "D"]);
    tmux.wait("third", 10, "told to stop it first", |s| {
        s.contains("dash/b is running: stop it first (s)")
    });
    tmux.keys("third", &["s"]);
    tmux.wait("third", 10, "the stop question", |s| {
        s.contains("Stop dash/b?")
    });
    tmux.keys("third", &["y"]);
    tmux.wait("third", 60, "b stopped", |s| row_has(s, "b", "stopped"));
    tmux.keys("third", &["D"]);
    tmux.wait("third", 10, "the remove question", |s| {
        s.contains("Remove dash/b?")
    });
    tmux.keys("third", &["y"]);
    let screen = tmux.wait("third", 10, "b gone, and said", |s| {
        row(s, "b").is_none() && s.contains("removed, with their checkpoints")
    });
    assert!(screen.contains("1 run: 1 running"), "{screen}");
    assert!(!d.home.run_dir("dash", "b").root.exists());
    tmux.detach("third");
}

#[test]
fn the_dashboard_says_what_is_wrong_and_draws_anyway() {
    let d = Daemon::up(1);
    let tmux = Tmux::new("odd");
    d.launch("session.toml", &session("odd", &["a"]));
    d.ok(&["freeze", "a", "layer1"]);
    d.wait_run("odd/a", 60, "layer1 frozen", |r| {
        r.groups.iter().any(|g| g.name == "layer1" && g.frozen)
    });

    tmux.open(
        "nope",
        100,
        30,
        &d.attach_command(&[], &["--theme", "nope"]),
    );
    tmux.open("small", 20, 5, &d.attach_command(&[], &[]));
    tmux.open("grows", 20, 5, &d.attach_command(&[], &[]));
    tmux.open("no-color", 100, 30, &d.attach_command(&["NO_COLOR=1"], &[]));
    tmux.open("xterm", 100, 30, &d.attach_command(&["TERM=xterm"], &[]));
    tmux.open("colour256", 100, 30, &d.attach_command(&[], &[]));
    tmux.open("ascii", 100, 30, &d.attach_command(&[], &["--ascii"]));
    let drawn = |s: &str| row_has(s, "a", "·❄····") && row(s, "layer1").is_some();

    let screen = tmux.wait("nope", 60, "the runs", drawn);
    assert!(screen.contains(r#"unknown theme "nope""#), "{screen}");

    // Too small to draw: it says so, and takes keys; larger again, it draws.
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    for name in ["small", "grows"] {
        let screen = tmux.wait(name, 30, "the size message", |s| {
            words(s).contains("thaw needs a terminal of at least 40x8")
        });
        assert!(words(&screen).contains("this one is 20x5"), "{screen}");
    }
    tmux.detach("small");
    tmux.ok(&["resize-window", "-t", "grows", "-x", "100", "-y", "30"]);
    tmux.wait("grows", 30, "the runs in the larger terminal", drawn);

    tmux.wait("no-color", 60, "the runs", drawn);
    let styled = tmux.styled_screen("no-color");
    assert_eq!(colours(&styled), Vec::<String>::new(), "NO_COLOR is set");
    assert!(
        reverse_video(&styled),
        "the selected run is not shown without colour"
    );

    tmux.wait("xterm", 60, "the runs", drawn);
    let used = colours(&tmux.styled_screen("xterm"));
    assert!(!used.is_empty(), "TERM=xterm has colours");
    assert!(
        used.iter().all(|c| of_sixteen(c)),
        "TERM=xterm has 16 colours: {used:?}"
    );
    tmux.wait("colour256", 60, "the runs", drawn);
    let used = colours(&tmux.styled_screen("colour256"));
    assert!(
        !used.iter().all(|c| of_sixteen(c)),
        "TERM=xterm-256color uses 256: {used:?}"
    );

    let screen = tmux.wait("ascii", 60, "the runs", |s| {
        row_has(s, "a", ".F....") && row(s, "layer1").is_some()
    });
    assert!(screen.is_ascii(), "{screen}");
    let header = screen.lines().next().unwrap_or_default();
    assert!(
        !header.contains('?'),
        "a glyph without an ASCII form: {header}"
    );
    assert!(row_has(&screen, "layer1", "F frozen"), "{screen}");
    assert!(row_has(&screen, "stem", ". trainable"), "{screen}");
    assert!(screen.contains("+ runs -"), "{screen}");

    for name in ["nope", "grows", "no-color", "xterm", "colour256", "ascii"] {
        tmux.detach(name);
    }

    // A theme file with a bad colour: named in the footer, the built-in theme drawn.
    std::fs::create_dir_all(d.home.path().join("config/themes")).unwrap();
    d.home
        .write("config/themes/bad.toml", "[colors]\nrunning = \"grean\"\n");
    tmux.open("bad-theme", 100, 30, &d.attach_command(&[], &[]));
    let screen = tmux.wait("bad-theme", 60, "the runs", drawn);
    assert!(
        screen.contains("themes/bad.toml: colors.running: \"grean\" is not a colour"),
        "{screen}"
    );
    tmux.detach("bad-theme");
}

#[test]
fn a_daemon_that_goes_away_is_said_and_the_dashboard_reconnects_when_it_is_back() {
    let d = Daemon::up(2);
    let tmux = Tmux::new("gone");
    d.launch("session.toml", &session("back", &["a"]));
    d.wait_run("back/a", 60, "a few losses", |r| r.step >= 10);
    tmux.open("view", 120, 30, &d.attach_command(&[], &[]));
    let old = d.pid();
    tmux.wait("view", 60, "the run", |s| {
        row_has(s, "a", "running") && s.contains(&format!("daemon {old}"))
    });

    // The daemon dies (its workers go on); the dashboard says so and keeps the last picture.
    common::daemon::kill(old, libc::SIGKILL);
    let screen = tmux.wait("view", 20, "the daemon lost", |s| {
        s.contains("daemon lost") && s.contains("daemon unreachable")
    });
    // The last picture may have caught the worker writing its epoch-end checkpoint.
    assert!(
        row_has(&screen, "a", "running") || row_has(&screen, "a", "checkpointing"),
        "{screen}"
    );

    // A new daemon adopts the worker; the dashboard finds it by itself.
    d.ok(&["up"]);
    let new = d.pid();
    assert_ne!(new, old);
    let screen = tmux.wait("view", 30, "the new daemon", |s| {
        s.contains(&format!("daemon {new}")) && !s.contains("daemon unreachable")
    });
    let spark = sparkline(row(&screen, "a").expect("run a"));
    assert!(
        spark.chars().count() >= 5,
        "history lost: {spark:?}\n{screen}"
    );
    // And it is steered through the new daemon.
    tmux.keys("view", &["Tab", "f"]);
    tmux.wait("view", 30, "stem frozen", |s| {
        s.contains("back/a: froze stem") && row_has(s, "a", "❄·····")
    });
    tmux.detach("view");
}
