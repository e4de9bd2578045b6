//! `thaw compare` on a real session: two tiny runs trained by `thaw train`, one from the other's
//! best weights, compared as a table, as JSON and as a plot.

mod common;

use std::process::Output;

use common::Home;
use serde_json::Value;

const SESSION: &str = r#"
name = "tiny"
[defaults]
model = "mlp"
data = "demo:shapes-small"
epochs = 2
batch_size = 16
log_every_steps = 2
device = "flex"
seed = 3
[[runs]]
name = "scratch"
[[runs]]
name = "pretrained"
weights = "run:scratch/best"
freeze = ["stem"]
unfreeze_at_epoch = 1
"#;

/// Parameters of the mlp on 3x32x32 images and 5 classes, by group.
const STEM: usize = 3 * 32 * 32 * 64 + 64;
const HIDDEN: usize = 64 * 64 + 64;
const HEAD: usize = 64 * 5 + 5;

fn trained() -> Home {
    let home = Home::new();
    let file = home.write("tiny.toml", SESSION);
    let out = home.run_cmd(&["train", file.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "{}", text(&out));
    home
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn compare(home: &Home, args: &[&str]) -> Output {
    let mut all = vec!["compare"];
    all.extend_from_slice(args);
    home.run_cmd(&all)
}

fn compare_ok(home: &Home, args: &[&str]) -> String {
    let out = compare(home, args);
    assert!(
        out.status.success(),
        "thaw compare {args:?}: {}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn compare_err(home: &Home, args: &[&str]) -> String {
    let out = compare(home, args);
    assert!(!out.status.success(), "thaw compare {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// What `metrics.csv` says, recomputed here independently of thaw's own reader.
struct Metrics {
    /// (step, loss, accuracy, wall_time) of every validation row.
    val: Vec<(u64, f64, f64, f64)>,
    /// samples_per_sec of every training row.
    speeds: Vec<f64>,
}

fn metrics(home: &Home, run: &str) -> Metrics {
    let csv = std::fs::read_to_string(home.run_dir("tiny", run).metrics_path()).expect("csv");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let (step, split, loss, acc) = (col("step"), col("split"), col("loss"), col("accuracy"));
    let (speed, wall) = (col("samples_per_sec"), col("wall_time"));
    let mut m = Metrics {
        val: Vec::new(),
        speeds: Vec::new(),
    };
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let num = |i: usize| f[i].parse::<f64>().expect("number");
        match f[split] {
            "val" => m.val.push((
                f[step].parse().expect("step"),
                num(loss),
                num(acc),
                num(wall),
            )),
            "train" if num(speed) > 0.0 => m.speeds.push(num(speed)),
            _ => {}
        }
    }
    m
}

fn close(a: &Value, b: f64, what: &str) {
    let a = a
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {a} is not a number"));
    assert!(
        (a - b).abs() <= 1e-9 * b.abs().max(1.0),
        "{what}: {a} != {b}"
    );
}

#[test]
fn a_trained_session_compares_as_table_json_and_plot() {
    let home = trained();
    let names = ["pretrained", "scratch"];
    let runs: Vec<Metrics> = names.iter().map(|n| metrics(&home, n)).collect();
    for (name, m) in names.iter().zip(&runs) {
        assert_eq!(m.val.len(), 2, "{name}: a validation row per epoch");
        assert!(!m.speeds.is_empty(), "{name}: training rows");
    }
    let best = |m: &Metrics| m.val.iter().map(|v| v.2).fold(f64::MIN, f64::max);
    let target = 0.9 * runs.iter().map(best).fold(f64::MIN, f64::max);

    // JSON: the documented keys, each value recomputed from metrics.csv.
    let json: Value = serde_json::from_str(&compare_ok(&home, &["tiny", "--json"])).expect("JSON");
    let array = json.as_array().expect("an array");
    assert_eq!(array.len(), 2);
    for ((obj, name), m) in array.iter().zip(names).zip(&runs) {
        let mut keys: Vec<&str> = obj
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "best_val_accuracy",
                "best_val_loss",
                "epochs",
                "epochs_trained",
                "mean_step_ms",
                "run",
                "seconds_to_target",
                "status",
                "steps_to_target",
                "target_accuracy",
                "total_params",
                "trainable_params",
                "weights",
            ]
        );
        assert_eq!(obj["run"], name);
        assert_eq!(obj["status"], "finished");
        assert_eq!(
            (&obj["epochs_trained"], &obj["epochs"]),
            (&2.into(), &2.into())
        );
        close(&obj["best_val_accuracy"], best(m), "best accuracy");
        let best_loss = m.val.iter().map(|v| v.1).fold(f64::MAX, f64::min);
        close(&obj["best_val_loss"], best_loss, "best loss");
        close(&obj["target_accuracy"], target, "target");
        match m.val.iter().find(|v| v.2 >= target) {
            Some(&(step, _, _, wall)) => {
                assert_eq!(obj["steps_to_target"], step, "{name}");
                close(&obj["seconds_to_target"], wall, "seconds to target");
            }
            None => {
                assert!(obj["steps_to_target"].is_null(), "{name}");
                assert!(obj["seconds_to_target"].is_null(), "{name}");
            }
        }
        let ms: f64 =
            m.speeds.iter().map(|s| 1000.0 * 16.0 / s).sum::<f64>() / m.speeds.len() as f64;
        close(&obj["mean_step_ms"], ms, "mean step ms");
        assert_eq!(obj["total_params"], STEM + HIDDEN + HEAD);
    }
    assert_eq!(array[0]["weights"], "run:scratch/best");
    assert_eq!(array[0]["trainable_params"], HIDDEN + HEAD);
    assert_eq!(array[1]["weights"], "none");
    assert_eq!(array[1]["trainable_params"], STEM + HIDDEN + HEAD);

    // The table: the same numbers, aligned under their headers.
    let table = compare_ok(&home, &["tiny"]);
    let lines: Vec<&str> = table.lines().collect();
    let percent = |f: f64| {
        let p = f * 100.0;
        if (p - p.round()).abs() < 0.05 {
            format!("{p:.0}%")
        } else {
            format!("{p:.1}%")
        }
    };
    let to = percent(target);
    let header = lines[0];
    let headers = [
        "run".to_string(),
        "status".into(),
        "weights".into(),
        "best acc".into(),
        "best loss".into(),
        format!("steps to {to}"),
        format!("time to {to}"),
        "trainable".into(),
        "step ms".into(),
    ];
    let mut at = 0;
    for h in &headers {
        let found = header[at..]
            .find(h.as_str())
            .unwrap_or_else(|| panic!("{h} in {header}"));
        at += found + h.len();
    }
    assert!(
        lines[1].starts_with("pretrained  finished  run:scratch/best"),
        "{table}"
    );
    assert!(lines[1].contains(&format!(
        "{}/{}",
        thousands(HIDDEN + HEAD),
        thousands(201_157)
    )));
    assert!(
        lines[2].starts_with("scratch     finished  none"),
        "{table}"
    );
    for line in &lines[1..3] {
        assert_eq!(line.len(), header.len(), "aligned:\n{table}");
    }
    let steps_col = header.find(&headers[5]).expect("steps column") + headers[5].len();
    for (line, m) in lines[1..3].iter().zip(&runs) {
        let expected = m
            .val
            .iter()
            .find(|v| v.2 >= target)
            .map_or("-".to_string(), |v| v.0.to_string());
        let cell = line[..steps_col].split_whitespace().last().expect("cell");
        assert_eq!(cell, expected, "{table}");
    }

    // An explicit target every run reaches at its first validation.
    let json: Value = serde_json::from_str(&compare_ok(
        &home,
        &["tiny", "--json", "--target-acc", "0.0001"],
    ))
    .expect("JSON");
    for (obj, m) in json.as_array().expect("array").iter().zip(&runs) {
        assert_eq!(obj["target_accuracy"], 0.0001);
        assert_eq!(obj["steps_to_target"], m.val[0].0);
    }
    let err = compare_err(&home, &["tiny", "--target-acc", "90"]);
    assert!(
        err.contains("--target-acc 90") && err.contains("0.9 for 90%"),
        "{err}"
    );

    // The plot: an SVG naming the runs and the thawed group; a PNG.
    let svg = home.path().join("curves.svg");
    let out = compare_ok(&home, &["tiny", "--plot", svg.to_str().expect("utf-8")]);
    assert!(out.contains("plot written to"), "{out}");
    let drawn = std::fs::read_to_string(&svg).expect("svg written");
    assert!(
        drawn.starts_with("<svg"),
        "{}",
        &drawn[..drawn.len().min(200)]
    );
    for name in names
        .iter()
        .chain(&["validation loss", "validation accuracy", "thaw stem"])
    {
        assert!(drawn.contains(name), "{name} missing from the plot");
    }
    let png = home.path().join("curves.png");
    compare_ok(&home, &["tiny", "--plot", png.to_str().expect("utf-8")]);
    let bytes = std::fs::read(&png).expect("png written");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000);

    // A run that never started and one whose files are damaged: dashes, not an error.
    let runs_dir = home.path().join("data/sessions/tiny/runs");
    std::fs::create_dir_all(runs_dir.join("zz-empty")).expect("mkdir");
    let damaged = runs_dir.join("zz-damaged");
    std::fs::create_dir_all(&damaged).expect("mkdir");
    std::fs::write(damaged.join("state.json"), "{\"status\": ").expect("write");
    std::fs::write(damaged.join("metrics.csv"), "step,epoch\n1,2,3\n").expect("write");
    std::fs::write(damaged.join("spec.toml"), "model = 3").expect("write");
    let table = compare_ok(&home, &["tiny"]);
    for name in ["zz-damaged", "zz-empty"] {
        let line = table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in\n{table}"));
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert!(cells[1..].iter().all(|c| *c == "-"), "{line}");
    }
    let json: Value = serde_json::from_str(&compare_ok(&home, &["tiny", "--json"])).expect("JSON");
    let empty = &json.as_array().expect("array")[3];
    assert_eq!(empty["run"], "zz-empty");
    for key in [
        "status",
        "weights",
        "best_val_accuracy",
        "steps_to_target",
        "total_params",
    ] {
        assert!(empty[key].is_null(), "{key}: {}", empty[key]);
    }
    close(
        &empty["target_accuracy"],
        target,
        "target of a run with no metrics",
    );
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[test]
fn an_unknown_session_lists_the_sessions_there_are() {
    let home = Home::new();
    let err = compare_err(&home, &["nope"]);
    assert!(
        err.contains("no session \"nope\"") && err.contains("no sessions yet"),
        "{err}"
    );
    for name in ["demo", "other"] {
        std::fs::create_dir_all(home.path().join("data/sessions").join(name).join("runs"))
            .expect("mkdir");
    }
    let err = compare_err(&home, &["nope"]);
    assert!(err.contains("the sessions there are: demo, other"), "{err}");
    let err = compare_err(&home, &["demo"]);
    assert!(err.contains("session \"demo\" has no runs"), "{err}");
}

#[test]
fn a_plot_file_must_be_svg_or_png() {
    let home = Home::new();
    std::fs::create_dir_all(home.path().join("data/sessions/s/runs/a")).expect("mkdir");
    let pdf = home.path().join("curves.pdf");
    let err = compare_err(&home, &["s", "--plot", pdf.to_str().expect("utf-8")]);
    assert!(
        err.contains("curves.pdf") && err.contains("must end in .svg or .png"),
        "{err}"
    );
    assert!(!pdf.exists());
}
