//! The comparison as a plain-text table, columns aligned, no colours.

use std::path::Path;

use super::RunSummary;

const DASH: &str = "-";

/// The table `thaw compare` prints: a header line and a line per run.
pub fn render(summaries: &[RunSummary], target: Option<f64>) -> String {
    render_within(summaries, target, usize::MAX).0
}

/// Which columns give way, first to last, when the table is wider than its room: what another
/// column says nearly as well goes first. `run` and `best acc` always stay.
const GIVE_WAY: [usize; 7] = [6, 4, 7, 1, 8, 2, 5];

/// The table in at most `width` columns, columns giving way in [`GIVE_WAY`]'s order; and the
/// headings of the columns left out.
pub fn render_within(
    summaries: &[RunSummary],
    target: Option<f64>,
    width: usize,
) -> (String, Vec<String>) {
    let to = target.map_or_else(|| "target".to_string(), percent);
    let header = [
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
    // The first three columns are words, left-aligned; the rest are numbers, right-aligned.
    let words = 3;
    let rows: Vec<[String; 9]> = summaries.iter().map(cells).collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut shown: Vec<usize> = (0..header.len()).collect();
    let wide = |shown: &[usize]| shown.iter().map(|&i| widths[i] + 2).sum::<usize>() - 2;
    let mut left_out = Vec::new();
    for column in GIVE_WAY {
        if wide(&shown) <= width {
            break;
        }
        shown.retain(|&i| i != column);
        left_out.push(header[column].clone());
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = shown
            .iter()
            .map(|&i| {
                let (cell, w) = (&cells[i], widths[i]);
                if i < words {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut out = line(&header);
    out.push('\n');
    for row in &rows {
        out.push_str(&line(row));
        out.push('\n');
    }
    (out, left_out)
}

fn cells(s: &RunSummary) -> [String; 9] {
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| DASH.to_string());
    let trainable = match (s.trainable_params, s.total_params) {
        (Some(t), Some(total)) => format!("{}/{}", thousands(t), thousands(total)),
        _ => DASH.to_string(),
    };
    let status = match s.stopped_early() {
        true => Some("finished early".to_string()),
        false => s.status.clone(),
    };
    [
        s.run.clone(),
        or_dash(status),
        or_dash(s.weights.as_deref().map(weights_label)),
        // One decimal always, so that the column lines up on the point.
        or_dash(s.best_val_accuracy.map(|a| format!("{:.1}%", a * 100.0))),
        or_dash(s.best_val_loss.map(|l| crate::number::fixed(l, 4))),
        or_dash(s.steps_to_target.map(|n| n.to_string())),
        or_dash(s.seconds_to_target.map(duration)),
        trainable,
        or_dash(s.mean_step_ms.map(|ms| format!("{ms:.1}"))),
    ]
}

/// `none`, `run:RUN/best`, or a weights file's name without its folders.
fn weights_label(weights: &str) -> String {
    if weights == "none" || weights.starts_with("run:") {
        return weights.to_string();
    }
    Path::new(weights)
        .file_name()
        .map_or_else(|| weights.to_string(), |n| n.to_string_lossy().to_string())
}

/// A fraction as a percentage: `85%`, `85.5%`.
pub fn percent(fraction: f64) -> String {
    let p = fraction * 100.0;
    if (p - p.round()).abs() < 0.05 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

fn duration(secs: f64) -> String {
    if secs < 60.0 {
        return format!("{secs:.1}s");
    }
    let whole = secs.round() as u64;
    if whole < 3600 {
        format!("{}m{:02}s", whole / 60, whole % 60)
    } else {
        format!("{}h{:02}m", whole / 3600, whole % 3600 / 60)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(run: &str) -> RunSummary {
        RunSummary {
            run: run.into(),
            status: Some("finished".into()),
            weights: Some("none".into()),
            best_val_accuracy: Some(0.875),
            best_val_loss: Some(0.41234),
            target_accuracy: Some(0.72),
            steps_to_target: Some(120),
            seconds_to_target: Some(75.4),
            trainable_params: Some(4933),
            total_params: Some(1_234_567),
            mean_step_ms: Some(12.345),
            epochs_trained: Some(10),
            epochs: Some(10),
        }
    }

    #[test]
    fn columns_line_up_and_missing_values_are_dashes() {
        let mut other = summary("a-much-longer-run-name");
        other.weights = Some("/data/weights/resnet18.pth".into());
        other.best_val_accuracy = Some(0.35);
        let empty = RunSummary {
            run: "queued".into(),
            status: None,
            weights: None,
            best_val_accuracy: None,
            best_val_loss: None,
            target_accuracy: Some(0.72),
            steps_to_target: None,
            seconds_to_target: None,
            trainable_params: None,
            total_params: None,
            mean_step_ms: None,
            epochs_trained: None,
            epochs: None,
        };
        let text = render(&[summary("scratch"), other, empty], Some(0.72));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "run                     status    weights       best acc  best loss  steps to 72%  time to 72%        trainable  step ms"
        );
        assert_eq!(
            lines[1],
            "scratch                 finished  none             87.5%     0.4123           120        1m15s  4,933/1,234,567     12.3"
        );
        assert!(lines[2].contains("resnet18.pth "), "{}", lines[2]);
        // Under `87.5%`, on the point.
        let point = lines[1].find("87.5%").unwrap() + 2;
        assert_eq!(lines[2].get(point - 2..point + 3), Some("35.0%"), "{text}");
        assert_eq!(
            lines[3],
            "queued                  -         -                    -          -             -            -                -        -"
        );
    }

    #[test]
    fn a_run_finished_before_its_epochs_stopped_early() {
        let mut early = summary("early");
        early.epochs_trained = Some(4);
        let mut running = early.clone();
        running.status = Some("running".into());
        let text = render(&[summary("full"), early, running], Some(0.72));
        let status: Vec<&str> = text
            .lines()
            .skip(1)
            .map(|l| {
                l.split("  ")
                    .filter(|c| !c.is_empty())
                    .nth(1)
                    .unwrap()
                    .trim()
            })
            .collect();
        assert_eq!(status, ["finished", "finished early", "running"]);
    }

    #[test]
    fn a_narrow_table_leaves_out_whole_columns_and_says_which() {
        let runs = [summary("pretrained-frozen"), summary("scratch")];
        let (full, none) = render_within(&runs, Some(0.72), 200);
        assert!(none.is_empty());
        assert_eq!(full, render(&runs, Some(0.72)));
        let (narrow, left_out) = render_within(&runs, Some(0.72), 78);
        let lines: Vec<&str> = narrow.lines().collect();
        assert!(lines.iter().all(|l| l.chars().count() <= 78), "{narrow}");
        assert_eq!(
            lines[0],
            "run                status    weights  best acc  steps to 72%  step ms"
        );
        assert_eq!(left_out, ["time to 72%", "best loss", "trainable"]);
        // However narrow, the run and its best accuracy stay.
        let (tiny, _) = render_within(&runs, Some(0.72), 10);
        assert!(tiny.starts_with("run                best acc\n"), "{tiny}");
    }

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(percent(0.855), "85.5%");
        assert_eq!(percent(0.9), "90%");
        assert_eq!(duration(4.26), "4.3s");
        assert_eq!(duration(3725.0), "1h02m");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(21_797_672), "21,797,672");
        assert_eq!(
            render(&[], None),
            "run  status  weights  best acc  best loss  steps to target  time to target  trainable  step ms\n"
        );
    }
}
