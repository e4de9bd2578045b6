//! Run detail: the run's training and validation loss over its whole life with the steps
//! where groups were frozen or thawed and where it resumed, its validation accuracy, its
//! layer groups and its events.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::charts::{self, xy};
use super::runs::{status_role, status_word};
use super::{Ctx, groups};
use crate::tui::theme::Role;

pub fn draw(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let app = ctx.app;
    let Some(run) = app.run() else {
        return;
    };
    let info = &run.info;
    let groups_height = (info.groups.len() as u16 + 3).min(area.height / 2);
    let [title, charts_area, lower] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(5),
        Constraint::Length(groups_height),
    ])
    .areas(area);

    let mut spans = vec![
        Span::styled(format!(" {} ", run.full_name()), ctx.style(Role::Title)),
        Span::styled(
            format!(
                "{} {} ",
                ctx.symbols.status(info.status),
                status_word(info.status)
            ),
            ctx.style(status_role(info.status)),
        ),
        Span::styled(
            format!(
                "· {} on {} · step {} · epoch {}/{} · lr x{} ",
                info.model,
                info.device,
                // The total is known once the worker has read the data.
                match info.total_steps {
                    0 => info.step.to_string(),
                    total => format!("{}/{total}", info.step),
                },
                info.epoch.min(info.epochs),
                info.epochs,
                info.lr_multiplier
            ),
            ctx.style(Role::Text),
        ),
    ];
    if let Some(bytes) = info.gpu_memory {
        let gib = bytes as f64 / (1u64 << 30) as f64;
        spans.push(Span::styled(
            format!("· {gib:.1} GiB GPU memory "),
            ctx.style(Role::Text),
        ));
    }
    if let Some(job) = &info.slurm {
        spans.push(Span::styled(
            format!("· {} ", job.line()),
            ctx.style(Role::Text),
        ));
    }
    if let Some(message) = &info.message {
        spans.push(Span::styled(format!("· {message}"), ctx.style(Role::Dim)));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), title);

    let [loss_area, acc_area] = match charts_area.width >= 70 || charts_area.height < 20 {
        true => Layout::horizontal([Constraint::Percentage(62), Constraint::Percentage(38)])
            .areas(charts_area),
        false => Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)])
            .areas(charts_area),
    };
    let markers = charts::markers(run, ctx);
    let scale = if app.log_scale { "log" } else { "linear" };
    let legend: String = markers_legend(&markers);
    charts::draw(
        frame,
        loss_area,
        ctx,
        format!(" loss ({scale}, l toggles){legend} "),
        vec![
            charts::Line {
                name: "train".into(),
                style: ctx.style(Role::TrainLoss),
                points: xy(&run.train_loss),
            },
            charts::Line {
                name: "val".into(),
                style: ctx.style(Role::ValLoss),
                points: xy(&run.val_loss),
            },
        ],
        &markers,
        app.log_scale,
    );
    let accuracy: Vec<(f64, f64)> = run
        .val_accuracy
        .iter()
        .map(|p| (p.step as f64, 100.0 * p.mean))
        .collect();
    charts::draw(
        frame,
        acc_area,
        ctx,
        " val accuracy % ".into(),
        vec![charts::Line {
            name: "val acc".into(),
            style: ctx.style(Role::ValAccuracy),
            points: accuracy,
        }],
        &markers,
        false,
    );

    let [left, right] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(lower);
    groups::draw(frame, left, ctx, true);
    groups::draw_events(frame, right, ctx);
}

/// ` · ❄ 120 ☀ 300`: the marker steps, for the chart's title.
fn markers_legend(markers: &[charts::Marker]) -> String {
    markers
        .iter()
        .rev()
        .take(4)
        .rev()
        .map(|m| format!(" {}{}", m.label, m.step))
        .collect()
}
