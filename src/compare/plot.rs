//! `thaw compare --plot`: validation loss and accuracy per run over steps, with the steps where
//! groups were frozen or thawed, as SVG or PNG.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::summary::RunRecord;
use crate::run::EventKind;

/// The image's size in pixels.
const SIZE: (u32, u32) = (1000, 760);

/// DejaVu Sans cut down to printable ASCII (run names are ASCII): PNG text needs glyphs, and an
/// embedded font draws the same everywhere, with no system fonts to find.
const FONT: &[u8] = include_bytes!("DejaVuSans-ascii.ttf");

/// Tableau's ten colours, one per run.
const COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The image formats `--plot` writes, by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlotFormat {
    Svg,
    Png,
}

impl PlotFormat {
    /// The format `path`'s extension asks for.
    pub fn of(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        match ext.as_deref() {
            Some("svg") => Ok(Self::Svg),
            Some("png") => Ok(Self::Png),
            _ => bail!(
                "cannot plot to {}: the file must end in .svg or .png",
                path.display()
            ),
        }
    }
}

/// Draws the validation curves of `session`'s runs into `path` (.svg or .png).
pub fn write(path: &Path, session: &str, records: &[RunRecord]) -> Result<()> {
    let format = PlotFormat::of(path)?;
    plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| anyhow!("the plot font built into thaw does not load"))?;
    let failed = |e: String| anyhow!("cannot draw the plot {}: {e}", path.display());
    match format {
        PlotFormat::Svg => {
            let root = SVGBackend::new(path, SIZE).into_drawing_area();
            draw(&root, session, records).map_err(|e| failed(e.to_string()))?;
            root.present().map_err(|e| failed(e.to_string()))?;
        }
        PlotFormat::Png => {
            let (w, h) = SIZE;
            let mut pixels = vec![0u8; w as usize * h as usize * 3];
            {
                let root = BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area();
                draw(&root, session, records).map_err(|e| failed(e.to_string()))?;
                root.present().map_err(|e| failed(e.to_string()))?;
            }
            image::save_buffer(path, &pixels, w, h, image::ExtendedColorType::Rgb8)
                .with_context(|| format!("cannot write the plot {}", path.display()))?;
        }
    }
    Ok(())
}

type Drawn<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    session: &str,
    records: &[RunRecord],
) -> Drawn<DB> {
    root.fill(&WHITE)?;
    let root = root.titled(&format!("session {session}"), ("sans-serif", 22))?;
    let panels = root.split_evenly((2, 1));
    let last_step = records
        .iter()
        .flat_map(|r| {
            let val = r.history.val.iter().map(|p| p.step);
            val.chain(r.freezes.iter().map(|e| e.step))
        })
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let losses = || {
        records
            .iter()
            .flat_map(|r| r.history.val.iter().map(|p| p.loss))
    };
    let loss = Panel {
        caption: "validation loss",
        y_desc: "loss",
        y_range: padded(losses().reduce(f64::min), losses().reduce(f64::max)),
        value: |p| p.loss,
        percent: false,
        legend: true,
        labels: false,
    };
    let accuracy = Panel {
        caption: "validation accuracy",
        y_desc: "accuracy",
        y_range: (0.0, 1.0),
        value: |p| p.accuracy,
        percent: true,
        legend: false,
        labels: true,
    };
    loss.draw(&panels[0], records, last_step)?;
    accuracy.draw(&panels[1], records, last_step)
}

/// A y range around `low..high` with a margin, never below zero (losses are not negative).
fn padded(low: Option<f64>, high: Option<f64>) -> (f64, f64) {
    match (low, high) {
        (Some(low), Some(high)) => {
            let margin = ((high - low) * 0.1).max(high.abs() * 0.02).max(1e-3);
            ((low - margin).max(0.0), high + margin)
        }
        _ => (0.0, 1.0),
    }
}

/// One of the two panels: a value of the validation passes over steps.
struct Panel {
    caption: &'static str,
    y_desc: &'static str,
    y_range: (f64, f64),
    value: fn(&super::history::ValPoint) -> f64,
    percent: bool,
    /// Whether the run names go here.
    legend: bool,
    /// Whether the frozen and thawed groups are named here.
    labels: bool,
}

impl Panel {
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        records: &[RunRecord],
        last_step: f64,
    ) -> Drawn<DB> {
        let mut chart = ChartBuilder::on(area)
            .caption(self.caption, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..last_step, self.y_range.0..self.y_range.1)?;
        let percent = self.percent;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc(self.y_desc)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| {
                if percent {
                    format!("{:.0}%", y * 100.0)
                } else {
                    format!("{y:.2}")
                }
            })
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 14))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (i, record) in records.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let points: Vec<(f64, f64)> = record
                .history
                .val
                .iter()
                .map(|p| (p.step as f64, (self.value)(p)))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?
                .label(record.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))?;
            self.draw_freezes(&mut chart, record, colour, i)?;
        }
        if self.legend {
            if records.iter().any(|r| !r.freezes.is_empty()) {
                chart
                    .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())?
                    .label("groups frozen")
                    .legend(|(x, y)| Cross::new((x + 10, y), 5, BLACK.stroke_width(2)));
                chart
                    .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())?
                    .label("groups thawed")
                    .legend(|(x, y)| TriangleMarker::new((x + 10, y), 6, BLACK.filled()));
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .label_font(("sans-serif", 14))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.4))
                .draw()?;
        }
        Ok(())
    }

    /// A dashed vertical line in the run's colour at each freeze or thaw, a marker at its foot
    /// and, in one panel, the groups, a line higher for each run so that runs do not overlap.
    fn draw_freezes<DB: DrawingBackend>(
        &self,
        chart: &mut ChartContext<DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
        record: &RunRecord,
        colour: RGBColor,
        index: usize,
    ) -> Drawn<DB> {
        let (bottom, top) = self.y_range;
        for event in &record.freezes {
            let x = event.step as f64;
            chart.draw_series(DashedLineSeries::new(
                [(x, bottom), (x, top)],
                6,
                4,
                colour.mix(0.8).stroke_width(1),
            ))?;
            let foot = (x, bottom);
            let verb = if event.kind == EventKind::Freeze {
                chart.draw_series([Cross::new(foot, 6, colour.stroke_width(2))])?;
                "freeze"
            } else {
                chart.draw_series([TriangleMarker::new(foot, 7, colour.filled())])?;
                "thaw"
            };
            if self.labels {
                let y = bottom + (top - bottom) * 0.06 * (index + 1) as f64;
                let text = format!(" {verb} {}", event.groups.join(", "));
                let style = ("sans-serif", 13).into_font().color(&colour);
                chart.draw_series([Text::new(text, (x, y), style)])?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_svg_and_png_are_accepted() {
        assert_eq!(
            PlotFormat::of(Path::new("a.svg")).ok(),
            Some(PlotFormat::Svg)
        );
        assert_eq!(
            PlotFormat::of(Path::new("a.PNG")).ok(),
            Some(PlotFormat::Png)
        );
        for bad in ["a.pdf", "a", "svg"] {
            let err = PlotFormat::of(Path::new(bad)).expect_err(bad).to_string();
            assert!(err.contains(".svg or .png"), "{err}");
        }
    }
}
