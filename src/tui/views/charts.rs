//! Charts of metric histories: a run's losses with its freeze, thaw and resume markers, its
//! validation accuracy, and several runs overlaid.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::symbols;
use ratatui::text::Span;
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, LegendPosition, Paragraph};

use super::Ctx;
use crate::run::EventKind;
use crate::series::Point;
use crate::tui::board::RunView;
use crate::tui::theme::{ColorDepth, Role};

/// Line markers, and the glyph each draws, for terminals without colour.
const DOTS: [(symbols::Marker, &str); 5] = [
    (symbols::Marker::Braille, "⣿"),
    (symbols::Marker::Dot, "•"),
    (symbols::Marker::Block, "█"),
    (symbols::Marker::Bar, "▄"),
    (symbols::Marker::Quadrant, "▞"),
];
/// With `--ascii` as well: what `asciify` leaves of them.
const ASCII_DOTS: [(symbols::Marker, &str); 2] =
    [(symbols::Marker::Dot, "*"), (symbols::Marker::Block, "#")];

/// One line of a chart.
pub struct Line {
    pub name: String,
    pub style: Style,
    pub points: Vec<(f64, f64)>,
}

/// A series' points as (step, mean).
pub fn xy(series: &[Point]) -> Vec<(f64, f64)> {
    series.iter().map(|p| (p.step as f64, p.mean)).collect()
}

/// Validation accuracy in percent: where old validations share a point, their best, so the
/// chart's top is the run's best accuracy however long it ran.
pub fn accuracy_xy(series: &[Point]) -> Vec<(f64, f64)> {
    series
        .iter()
        .map(|p| (p.step as f64, 100.0 * p.max))
        .collect()
}

/// A vertical marker: where a run's groups were frozen, thawed, or it resumed.
pub struct Marker {
    pub step: f64,
    pub label: &'static str,
}

/// The run's freeze, thaw, resume and rollback events as markers.
pub fn markers(run: &RunView, ctx: &Ctx) -> Vec<Marker> {
    run.events
        .iter()
        .filter_map(|e| {
            let label = match e.kind {
                EventKind::Freeze => ctx.symbols.frozen,
                EventKind::Unfreeze => ctx.symbols.thaw,
                // A rollback after a loss that was not finite also goes on from a checkpoint.
                EventKind::Resumed | EventKind::Rollback => ctx.symbols.resumed,
                _ => return None,
            };
            Some(Marker {
                step: e.step as f64,
                label,
            })
        })
        .collect()
}

/// Draws `lines` on shared axes with `markers` as vertical lines; `log` plots the values'
/// base-10 logarithm (labels stay in the values' units).
pub fn draw(
    frame: &mut Frame,
    area: Rect,
    ctx: &Ctx,
    title: String,
    lines: Vec<Line>,
    markers: &[Marker],
    log: bool,
) {
    let block = ctx.block(title);
    let transform = |v: f64| match log {
        true => v.max(1e-12).log10(),
        false => v,
    };
    let lines: Vec<Line> = lines
        .into_iter()
        .map(|l| Line {
            points: l
                .points
                .into_iter()
                .filter(|(_, y)| y.is_finite() && (!log || *y > 0.0))
                .map(|(x, y)| (x, transform(y)))
                .collect(),
            ..l
        })
        .collect();
    let all = lines.iter().flat_map(|l| l.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in all {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        let empty = Paragraph::new(Span::styled("no points yet", ctx.style(Role::Dim)));
        frame.render_widget(empty.block(block), area);
        return;
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let pad = ((y1 - y0) * 0.05).max(1e-9);
    // A loss or an accuracy is never negative: the axis does not say -0.595 for the padding.
    let floor = match !log && y0 >= 0.0 {
        true => 0.0,
        false => f64::MIN,
    };
    let (y0, y1) = ((y0 - pad).max(floor), y1 + pad);
    let marks: Vec<[(f64, f64); 2]> = markers
        .iter()
        .map(|m| [(m.step, y0), (m.step, y1)])
        .collect();
    // Without colour, lines differ by their dots, and the legend shows each line's dot.
    let colourless = ctx.app.depth == ColorDepth::None;
    let marker = |i: usize| match (colourless, ctx.symbols.ascii) {
        (false, _) => (ctx.symbols.chart, ""),
        (true, false) => DOTS[i % DOTS.len()],
        (true, true) => ASCII_DOTS[i % ASCII_DOTS.len()],
    };
    // Names padded to one width: the legend writes every cell of its box, and no line drawn
    // beneath shows through after a short name.
    let widest = lines
        .iter()
        .map(|l| l.name.chars().count())
        .max()
        .unwrap_or(0);
    let mut datasets: Vec<Dataset> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let (marker, glyph) = marker(i);
            let name = match glyph {
                "" => format!("{:<widest$}", l.name),
                glyph => format!("{glyph} {:<widest$}", l.name),
            };
            Dataset::default()
                .name(name)
                .marker(marker)
                .graph_type(GraphType::Line)
                .style(l.style)
                .data(&l.points)
        })
        .collect();
    let mut named: Vec<&str> = Vec::new();
    for (m, points) in markers.iter().zip(&marks) {
        let mut dataset = Dataset::default()
            .marker(ctx.symbols.chart)
            .graph_type(GraphType::Line)
            .style(ctx.style(Role::Marker))
            .data(points);
        // One legend entry per kind of marker.
        if !named.contains(&m.label) {
            named.push(m.label);
            dataset = dataset.name(m.label);
        }
        datasets.push(dataset);
    }
    let label = |v: f64| {
        let v = if log { 10f64.powf(v) } else { v };
        Span::styled(number(v), ctx.style(Role::Dim))
    };
    // Runs compared in one chart (no markers) are told apart only by the legend: there it may
    // take the chart's whole height rather than vanish on a 24-line terminal.
    let legend_height = match markers.is_empty() {
        true => 100,
        false => 70,
    };
    let chart = Chart::new(datasets)
        .block(block)
        .legend_position(Some(LegendPosition::TopRight))
        .hidden_legend_constraints((
            Constraint::Percentage(50),
            Constraint::Percentage(legend_height),
        ))
        .x_axis(
            Axis::default()
                .bounds([x0, x1])
                .labels([label_x(x0, ctx), label_x(x1, ctx)])
                .style(ctx.style(Role::Border)),
        )
        .y_axis(
            Axis::default()
                .bounds([y0, y1])
                .labels([label(y0), label((y0 + y1) / 2.0), label(y1)])
                .style(ctx.style(Role::Border)),
        );
    frame.render_widget(chart, area);
}

fn label_x<'a>(x: f64, ctx: &Ctx) -> Span<'a> {
    Span::styled(format!("{x:.0}"), ctx.style(Role::Dim))
}

/// Four significant figures at most, short.
fn number(v: f64) -> String {
    match v.abs() {
        0.0 => "0".into(),
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 1.0 => format!("{v:.2}"),
        a if a >= 0.01 => format!("{v:.3}"),
        _ => format!("{v:.1e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_validations_plot_their_best_accuracy() {
        let merged = Point::single(100, 0.3).merge(Point::single(200, 0.9));
        let points = [merged, Point::single(300, 0.6)];
        assert_eq!(accuracy_xy(&points), [(100.0, 90.0), (300.0, 60.0)]);
    }
}
