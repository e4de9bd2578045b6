//! A fixed subscription stream of one session of five runs, as the daemon would send it, for
//! the view and key tests.

use crate::gpu::GpuStats;
use crate::protocol::{Comparison, RunSummary};
use crate::protocol::{GroupInfo, History, Response, RunInfo, RunSnapshot, Update};
use crate::run::{Event, EventKind, RunStatus};
use crate::series::Point;
use crate::tui::app::{App, HostStats, Input};
use crate::tui::theme::{ColorDepth, Themes};

const GROUPS: [(&str, usize); 6] = [
    ("stem", 2_432),
    ("layer1", 9_344),
    ("layer2", 33_088),
    ("layer3", 131_712),
    ("layer4", 525_568),
    ("head", 645),
];

fn groups(frozen: &[&str], pretrained: bool) -> Vec<GroupInfo> {
    GROUPS
        .iter()
        .map(|&(name, params)| GroupInfo {
            name: name.into(),
            frozen: frozen.contains(&name),
            params,
            lr: Some(2e-3),
            pretrained: pretrained.then_some(if name == "head" { 0 } else { params }),
        })
        .collect()
}

fn info(name: &str, status: RunStatus, step: usize, frozen: &[&str], pretrained: bool) -> RunInfo {
    RunInfo {
        session: "demo".into(),
        name: name.into(),
        status,
        step,
        // Epochs done: 40 steps each.
        epoch: step / 40,
        epochs: 15,
        total_steps: 600,
        batch_size: 16,
        model: "resnet-mini".into(),
        device: "flex".into(),
        last_loss: (step > 0).then(|| loss(name, step)),
        groups: groups(frozen, pretrained),
        message: match status {
            RunStatus::Queued => Some("waiting for a CPU slot (2 of 2 in use)".into()),
            RunStatus::Paused => Some("paused by request".into()),
            _ => None,
        },
        best_val_loss: (step >= 40).then(|| loss(name, step) + 0.1),
        best_val_accuracy: (step >= 40).then(|| accuracy(name, step)),
        samples_per_sec: (status == RunStatus::Running).then_some(320.0),
        grad_norm: None,
        // The steps left at 320 samples a second and a 2 s validation at each epoch end left.
        secs_left: (status == RunStatus::Running)
            .then(|| (600 - step) as f64 / 20.0 + (15 - step / 40) as f64 * 2.0),
        secs_left_grows: false,
        lr_multiplier: 1.0,
        pid: (status == RunStatus::Running).then_some(1234),
        queued_reason: None,
        gpu_memory: None,
        slurm: None,
    }
}

/// A loss that falls with steps, faster for pretrained runs, with a deterministic wobble.
fn loss(name: &str, step: usize) -> f64 {
    let speed = if name.starts_with("pretrained") {
        0.02
    } else {
        0.006
    };
    let wobble = 0.08 * ((step as f64) * 0.7 + name.len() as f64).sin();
    0.4 + 1.6 * (-speed * step as f64).exp() + wobble
}

fn accuracy(name: &str, step: usize) -> f64 {
    let ceiling = if name.starts_with("pretrained") {
        0.62
    } else {
        0.38
    };
    ceiling * (1.0 - (-0.01 * step as f64).exp())
}

fn history(name: &str, step: usize) -> History {
    let every = |n: usize| (1..=step).filter(move |s| s % n == 0);
    History {
        train_loss: every(5)
            .map(|s| Point::single(s as u64, loss(name, s)))
            .collect(),
        train_accuracy: Vec::new(),
        grad_norm: Vec::new(),
        val_loss: every(40)
            .map(|s| Point::single(s as u64, loss(name, s) + 0.1))
            .collect(),
        val_accuracy: every(40)
            .map(|s| Point::single(s as u64, accuracy(name, s)))
            .collect(),
    }
}

fn event(step: usize, kind: &str, message: &str, groups: &[&str]) -> Event {
    Event {
        time: 0.0,
        step,
        // Epochs done: 40 steps each.
        epoch: step / 40,
        kind: EventKind::from(kind.to_string()),
        message: message.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

const BODY: [&str; 5] = ["stem", "layer1", "layer2", "layer3", "layer4"];

/// The snapshot of the session, run by run, then its end.
pub fn stream() -> Vec<Response> {
    let runs = [
        (
            info("pretrain", RunStatus::Finished, 600, &[], false),
            vec![event(
                600,
                "finished",
                "finished 15 epochs at step 600",
                &[],
            )],
        ),
        (
            info("scratch", RunStatus::Running, 240, &[], false),
            vec![
                event(
                    200,
                    "validation",
                    "epoch 5: val loss 1.2000, accuracy 30.0%",
                    &[],
                ),
                event(200, "checkpoint", "checkpoint step-200 (epoch end)", &[]),
            ],
        ),
        (
            info("pretrained-frozen", RunStatus::Running, 260, &BODY, true),
            vec![
                event(
                    0,
                    "weights",
                    "loaded 30 of 32 tensors from pretrain/best.bpk; head is new",
                    &[],
                ),
                event(
                    0,
                    "freeze",
                    "froze stem, layer1, layer2, layer3, layer4 (702k params, by the session file)",
                    &BODY,
                ),
                event(
                    240,
                    "validation",
                    "epoch 6: val loss 0.6100, accuracy 58.0%",
                    &[],
                ),
            ],
        ),
        (
            info(
                "frozen-then-thawed",
                RunStatus::Paused,
                220,
                &["stem", "layer1"],
                true,
            ),
            vec![
                event(
                    0,
                    "freeze",
                    "froze stem, layer1, layer2, layer3, layer4 (by the session file)",
                    &BODY,
                ),
                event(
                    160,
                    "unfreeze",
                    "thawed layer2, layer3, layer4 (by the schedule at epoch 4)",
                    &["layer2", "layer3", "layer4"],
                ),
                event(180, "resumed", "resumed from checkpoint step-180", &[]),
                event(220, "pause", "paused at step 220", &[]),
            ],
        ),
        (info("late", RunStatus::Queued, 0, &[], false), vec![]),
    ];
    let count = runs.len();
    let mut stream: Vec<Response> = runs
        .into_iter()
        .map(|(info, events)| {
            let history = history(&info.name, info.step);
            Response::Snapshot {
                run: Box::new(RunSnapshot {
                    info,
                    history,
                    events,
                }),
            }
        })
        .collect();
    stream.push(Response::SnapshotDone { runs: count });
    stream
}

/// A later update: a freeze the worker carried out.
pub fn freeze_event(run: &str, group: &str) -> Response {
    Response::Update {
        update: Box::new(Update::Event {
            session: "demo".into(),
            run: run.into(),
            event: event(
                250,
                "freeze",
                &format!("froze {group} (9344 params, by request)"),
                &[group],
            ),
        }),
    }
}

/// The daemon's comparison of the session.
pub fn comparison() -> Comparison {
    let summary = |run: &str, weights: &str, acc: f64, steps: Option<usize>| RunSummary {
        run: run.into(),
        status: Some("running".into()),
        weights: Some(weights.into()),
        best_val_accuracy: Some(acc),
        best_val_loss: Some(1.0 - acc),
        target_accuracy: Some(0.5),
        steps_to_target: steps,
        seconds_to_target: steps.map(|s| s as f64 * 0.05),
        trainable_params: Some(645),
        total_params: Some(702_789),
        mean_step_ms: Some(50.0),
        epochs_trained: Some(4),
        epochs: Some(15),
    };
    Comparison {
        target: Some(0.5),
        runs: vec![
            summary("frozen-then-thawed", "run:pretrain/best", 0.55, Some(200)),
            summary("pretrained-frozen", "run:pretrain/best", 0.58, Some(160)),
            summary("scratch", "none", 0.33, None),
        ],
    }
}

/// An app that has taken in the whole stream, at a fixed host, depth and theme.
pub fn app(ascii: bool) -> App {
    let mut app = App::new(
        Themes::builtin(),
        "dark".into(),
        ColorDepth::TrueColor,
        ascii,
    );
    app.handle(Input::Connected { pid: 4242 });
    app.handle(Input::Host(HostStats {
        hostname: "gpu-box".into(),
        cores: 16,
        cpu_percent: Some(40),
        daemon_uptime: Some(3 * 3600 + 7 * 60),
    }));
    for response in stream() {
        app.handle(Input::Daemon(response));
    }
    app
}

/// Two GPUs as the daemon reports them, the first busy with `scratch`.
pub fn gpus() -> Response {
    let gpu = |index: usize, utilization: u32, used: u64, processes: Vec<(u32, u64)>| GpuStats {
        index,
        name: "NVIDIA H100 80GB HBM3".into(),
        utilization: Some(utilization),
        memory_used: Some(used << 30),
        memory_total: 80 << 30,
        temperature: Some(40 + utilization / 4),
        power: Some(70.0 + 6.0 * f64::from(utilization)),
        processes,
    };
    Response::Update {
        update: Box::new(Update::Gpus {
            gpus: vec![gpu(0, 87, 31, vec![(1234, 31 << 30)]), gpu(1, 0, 1, vec![])],
        }),
    }
}
