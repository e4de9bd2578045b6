//! How the daemon's answers are printed: the `status` table, a GPU's line, an event of `logs`.

use std::io::IsTerminal;

use crossterm::style::Stylize;

use crate::protocol::RunInfo;
use crate::run::{Event, RunStatus};

/// `GPU 0  NVIDIA H100 80GB HBM3  87%  31.2/80.0 GiB  61°C  592 W`; a figure NVML did not give
/// is `-`.
pub fn gpu_line(gpu: &crate::gpu::GpuStats) -> String {
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    format!(
        "GPU {}  {}  {}  {}/{:.1} GiB  {}  {}",
        gpu.index,
        gpu.name,
        or_dash(gpu.utilization.map(|u| format!("{u}%"))),
        or_dash(gpu.memory_used.map(|m| format!("{:.1}", gib(m)))),
        gib(gpu.memory_total),
        or_dash(gpu.temperature.map(|t| format!("{t}°C"))),
        or_dash(gpu.power.map(|w| format!("{w:.0} W"))),
    )
}

pub fn colours() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// The runs as a table, a line each, with what a run waits for or why it failed below it.
pub fn status_table(runs: &[RunInfo], colour: bool) -> String {
    // A column as wide as its widest cell, or its header.
    let widest = |cell: fn(&RunInfo) -> String, header: &str| {
        runs.iter()
            .map(|r| cell(r).len())
            .fold(header.len(), usize::max)
    };
    let name_width = widest(RunInfo::full_name, "RUN");
    let device_width = widest(RunInfo::device_said, "DEVICE");
    let mut out = format!(
        "{:<name_width$}  {:<13} {:<device_width$} {:>13} {:>7} {:>8} {:>8} {:>7}  FROZEN\n",
        "RUN", "STATUS", "DEVICE", "STEP", "EPOCH", "LOSS", "VAL ACC", "LEFT"
    );
    for run in runs {
        let word = format!("{:<13}", run.status.word());
        let word = match (colour, run.status) {
            (false, _) => word,
            (true, RunStatus::Running | RunStatus::Finished) => word.green().to_string(),
            (true, RunStatus::Failed) => word.red().to_string(),
            (true, RunStatus::Paused | RunStatus::Interrupted) => word.yellow().to_string(),
            (true, _) => word.dim().to_string(),
        };
        let step = match run.total_steps {
            0 => run.step.to_string(),
            total => format!("{}/{total}", run.step),
        };
        let epoch = format!("{}/{}", run.epoch_in_progress(), run.epochs);
        let loss = run
            .last_loss
            .map_or("-".into(), |l| crate::number::fixed(l, 4));
        let acc = run
            .best_val_accuracy
            .map_or("-".into(), |a| format!("{:.1}%", a * 100.0));
        let left = run.time_left_said();
        let frozen: Vec<&str> = run
            .groups
            .iter()
            .filter(|g| g.frozen)
            .map(|g| g.name.as_str())
            .collect();
        out.push_str(&format!(
            "{:<name_width$}  {word} {:<device_width$} {step:>13} {epoch:>7} {loss:>8} {acc:>8} {left:>7}  {}\n",
            run.full_name(),
            run.device_said(),
            match frozen.is_empty() {
                true => "-".to_string(),
                false => frozen.join(","),
            }
        ));
        let note = run.queued_reason.as_ref().or(run.message.as_ref());
        if let Some(note) = note {
            out.push_str(&format!("{:<name_width$}    {note}\n", ""));
        }
        if let Some(line) = run.slurm_line()
            && !note.is_some_and(|n| n.contains("Slurm job"))
        {
            out.push_str(&format!("{:<name_width$}    {line}\n", ""));
        }
    }
    out
}

/// An event as one line of text: UTC time, step, epoch, kind, message, groups.
pub fn event_line(event: &Event) -> String {
    let time = crate::number::utc(event.time);
    let groups = match event.groups.is_empty() {
        true => String::new(),
        false => format!(" [{}]", event.groups.join(", ")),
    };
    format!(
        "{time} step {} epoch {} {:<11} {}{groups}",
        event.step, event.epoch, event.kind, event.message
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gpu_line_shows_what_nvml_gave() {
        let gpu = crate::gpu::GpuStats {
            index: 1,
            name: "NVIDIA H100 80GB HBM3".into(),
            utilization: Some(87),
            memory_used: Some(31 << 30),
            memory_total: 80 << 30,
            temperature: None,
            power: Some(592.4),
            processes: vec![],
        };
        assert_eq!(
            gpu_line(&gpu),
            "GPU 1  NVIDIA H100 80GB HBM3  87%  31.0/80.0 GiB  -  592 W"
        );
    }

    fn run(name: &str, status: RunStatus) -> RunInfo {
        RunInfo {
            session: "s".into(),
            name: name.into(),
            status,
            step: 150,
            epoch: 2,
            epochs: 10,
            total_steps: 500,
            batch_size: 32,
            model: "resnet18".into(),
            device: "flex".into(),
            last_loss: Some(0.5),
            groups: vec![],
            message: None,
            best_val_loss: None,
            best_val_accuracy: None,
            samples_per_sec: Some(64.0),
            grad_norm: None,
            secs_left: Some(301.0),
            secs_left_grows: false,
            lr_multiplier: 1.0,
            pid: None,
            queued_reason: None,
            gpu_memory: None,
            slurm: None,
        }
    }

    #[test]
    fn the_status_table_says_the_time_left_of_training_runs_only() {
        let table = status_table(
            &[
                run("a", RunStatus::Running),
                run("b", RunStatus::Paused),
                RunInfo {
                    secs_left: None,
                    ..run("c", RunStatus::Running)
                },
                RunInfo {
                    secs_left_grows: true,
                    ..run("d", RunStatus::Running)
                },
            ],
            false,
        );
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].contains(" LEFT "), "{table}");
        // The worker's reckoning (validation and checkpoints in it), not 350 steps x 32 / 64.
        assert!(lines[1].contains(" 5m01s "), "{table}");
        assert!(
            lines[2].contains(" - "),
            "a paused run has no time left: {table}"
        );
        // From a worker that gives no reckoning: the steps alone, 175 s.
        assert!(lines[3].contains(" 2m55s "), "{table}");
        // Groups thaw later, and steps will be slower: a floor.
        assert!(lines[4].contains(" 5m01s+ "), "{table}");
    }

    #[test]
    fn the_status_table_says_where_each_run_trains() {
        let on = |name: &str, device: &str| RunInfo {
            device: device.into(),
            ..run(name, RunStatus::Running)
        };
        let table = status_table(
            &[
                on("a", "tch:cuda:0"),
                on("b", "tch:cuda:1"),
                on("c", "tch:cpu"),
            ],
            false,
        );
        let lines: Vec<&str> = table.lines().collect();
        let column = lines[0].find("DEVICE").expect("a device column");
        for (line, device) in lines[1..].iter().zip(["cuda:0 ", "cuda:1 ", "tch:cpu "]) {
            assert_eq!(
                line.get(column..column + device.len()),
                Some(device),
                "{table}"
            );
        }
    }

    #[test]
    fn a_slurm_job_that_ended_otherwise_than_its_finished_run_says_so() {
        let job = |state: &str| {
            Some(Box::new(crate::protocol::SlurmInfo {
                job_id: 42,
                state: state.into(),
                reason: None,
                node: Some("n1".into()),
                restarts: 0,
            }))
        };
        let finished = |state: &str| RunInfo {
            slurm: job(state),
            ..run("a", RunStatus::Finished)
        };
        let table = status_table(&[finished("TIMEOUT"), finished("COMPLETED")], false);
        assert!(
            table.contains("Slurm job 42 TIMEOUT on n1 (after the run had finished)"),
            "{table}"
        );
        assert!(table.contains("Slurm job 42 COMPLETED on n1\n"), "{table}");
    }
}
