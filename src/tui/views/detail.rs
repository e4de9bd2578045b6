//! Run detail: the run's training and validation loss over its whole life with the steps
//! where groups were frozen or thawed and where it resumed, its validation accuracy (and, for a
//! run that clips its gradients, their norm), its layer groups and its events.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::charts::{self, xy};
use super::runs::status_role;
use super::{Ctx, groups};
use crate::tui::theme::Role;

pub fn draw(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let app = ctx.app;
    let Some(run) = app.run() else {
        return;
    };
    let info = &run.info;
    // The title line always; the groups and events below the charts only where the charts
    // keep room of their own (at 40x8 the title and charts are all there is room for).
    let groups_height = match area.height >= 12 {
        true => (info.groups.len() as u16 + 3).min(area.height / 2),
        false => 0,
    };
    let [title, charts_area, lower] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(groups_height),
    ])
    .areas(area);

    frame.render_widget(Paragraph::new(title_line(run, ctx, title.width)), title);

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
    // A run that clips its gradients has their norm beside its accuracy, where there is room.
    let (acc_area, norm_area) = match !run.grad_norm.is_empty() && acc_area.height >= 12 {
        true => {
            let [acc, norm] =
                Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)])
                    .areas(acc_area);
            (acc, Some(norm))
        }
        false => (acc_area, None),
    };
    if let Some(area) = norm_area {
        charts::draw(
            frame,
            area,
            ctx,
            format!(" grad norm before clipping ({scale}) "),
            vec![charts::Line {
                name: "grad norm".into(),
                style: ctx.style(Role::TrainLoss),
                // Where a long run's intervals share a point, their largest: spikes stay seen.
                points: run
                    .grad_norm
                    .iter()
                    .map(|p| (p.step as f64, p.max))
                    .collect(),
            }],
            &markers,
            app.log_scale,
        );
    }
    let accuracy = charts::accuracy_xy(&run.val_accuracy);
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

    if lower.height == 0 {
        return;
    }
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

/// The run's name and status, then what fits of the rest, in the order it is given up when
/// the terminal is narrow: the gradient norm, the learning-rate multiplier, the model and
/// device, the Slurm job (when the message does not say it already), GPU memory; then, with
/// little room left, the message, the epoch and the step, each cut to the room left or left
/// out.
fn title_line<'a>(run: &crate::tui::board::RunView, ctx: &Ctx, width: u16) -> Line<'a> {
    let info = &run.info;
    let text = ctx.style(Role::Text);
    // (text, style, rank): the highest rank goes first.
    let mut parts: Vec<(String, ratatui::style::Style, u8)> = vec![
        (format!(" {} ", run.full_name()), ctx.style(Role::Title), 0),
        (
            format!(
                "{} {} ",
                ctx.symbols.status(info.status),
                info.status.word()
            ),
            ctx.style(status_role(info.status)),
            0,
        ),
        (format!("· {} on {} ", info.model, info.device), text, 5),
        (
            format!(
                "· step {} ",
                // The total is known once the worker has read the data.
                match info.total_steps {
                    0 => info.step.to_string(),
                    total => format!("{}/{total}", info.step),
                },
            ),
            text,
            1,
        ),
        (
            format!("· epoch {}/{} ", info.epoch_in_progress(), info.epochs),
            text,
            1,
        ),
        (
            format!("· lr x{} ", crate::number::plain(info.lr_multiplier)),
            text,
            6,
        ),
    ];
    if let Some(grad) = info.grad_norm {
        parts.push((
            format!(
                "· grad norm {}, {:.0}% clipped ",
                crate::number::fixed(grad.mean, 2),
                grad.clipped * 100.0
            ),
            text,
            7,
        ));
    }
    if let Some(bytes) = info.gpu_memory {
        let gib = bytes as f64 / (1u64 << 30) as f64;
        parts.push((format!("· {gib:.1} GiB GPU memory "), text, 3));
    }
    let message = info.message.as_deref().unwrap_or_default();
    if let (Some(job), Some(line)) = (&info.slurm, info.slurm_line())
        && !message.contains(&format!("Slurm job {}", job.job_id))
    {
        parts.push((format!("· {line} "), text, 4));
    }
    if !message.is_empty() {
        parts.push((format!("· {message}"), ctx.style(Role::Dim), 2));
    }
    let wide = |parts: &[(String, _, u8)]| -> usize {
        parts.iter().map(|(t, _, _)| t.chars().count()).sum()
    };
    let width = usize::from(width);
    // Less room than this says nothing of a part but its first letters: it goes instead.
    const MIN_CUT: usize = 12;
    while wide(&parts) > width {
        let highest = parts.iter().map(|p| p.2).max().unwrap_or(0);
        if highest > 2 {
            parts.retain(|p| p.2 != highest);
            continue;
        }
        // The step, epoch and message stay while they fit. The message (rank 2, the last) is
        // cut to what is left, where that says something; the step and epoch (rank 1) are
        // numbers, said whole or left out.
        let last = parts.pop().expect("the name is there");
        let room = width.saturating_sub(wide(&parts));
        if last.2 == 0 || (last.2 == 2 && room >= MIN_CUT) {
            parts.push((super::fit(&last.0, room), last.1, last.2));
            break;
        }
    }
    Line::from(
        parts
            .into_iter()
            .map(|(t, style, _)| Span::styled(t, style))
            .collect::<Vec<_>>(),
    )
}
