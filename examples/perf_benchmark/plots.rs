//! `--plots DIR`: SVG pictures of a run (the `plotters` crate).
//!
//! - `roundtrip-latency.svg`: the distribution of round-trip latencies,
//!   lahja against the raw baseline, in each placement (each point the
//!   median over repetitions of that quantile).
//! - `payload-throughput.svg`: MB/s to one consumer against payload size,
//!   for each path measured (lahja and raw, in each placement).

use std::path::Path;

use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;

use crate::stats::{QUANTILES, median};

/// One line of a plot: its label and its points.
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// The element-wise median of several runs' quantiles, as (latency,
/// fraction of round trips at or below it).
pub fn distribution(runs: &[Vec<f64>]) -> Vec<(f64, f64)> {
    QUANTILES
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let at: Vec<f64> = runs.iter().filter_map(|run| run.get(i).copied()).collect();
            (median(&at), q / 100.0)
        })
        .filter(|(latency, _)| latency.is_finite() && *latency > 0.0)
        .collect()
}

const COLORS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];

/// Draws `lines` to `file`: x on a log scale, y on a log scale when
/// `log_y`.
pub fn draw(
    file: &Path,
    title: &str,
    (x_label, y_label): (&str, &str),
    log_y: bool,
    lines: &[Line],
) -> Result<(), Box<dyn std::error::Error>> {
    let all = || lines.iter().flat_map(|line| line.points.iter());
    let (mut x_min, mut x_max, mut y_min, mut y_max) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in all() {
        (x_min, x_max) = (x_min.min(x), x_max.max(x));
        (y_min, y_max) = (y_min.min(y), y_max.max(y));
    }
    if x_min > x_max {
        return Err("nothing to plot".into());
    }
    let root = SVGBackend::new(file, (900, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut builder = ChartBuilder::on(&root);
    let chart = builder
        .caption(title, ("sans-serif", 22))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(64);
    let x_range = (x_min * 0.8..x_max * 1.25).log_scale();
    let labels = (x_label, y_label);
    if log_y {
        let y_range = (y_min * 0.8..y_max * 1.25).log_scale();
        draw_lines(
            &mut chart.build_cartesian_2d(x_range, y_range)?,
            labels,
            lines,
        )?;
    } else {
        let y_range = 0.0..y_max.max(1e-9) * 1.05;
        draw_lines(
            &mut chart.build_cartesian_2d(x_range, y_range)?,
            labels,
            lines,
        )?;
    }
    root.present()?;
    Ok(())
}

/// The axes, their labels, the lines and the legend.
fn draw_lines<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    (x_label, y_label): (&str, &str),
    lines: &[Line],
) -> Result<(), Box<dyn std::error::Error>>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_max_light_lines(1)
        .y_max_light_lines(1)
        .draw()?;
    for (i, line) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                line.points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(&line.label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}
