//! The tuning plots: the range test's loss against the learning rate, a study's
//! objective by trial, and its parameters' importance. Drawn with the embedded font
//! and written atomically, as the learning curves are.

use std::ops::Range;
use std::path::Path;

use plotters::prelude::*;

use crate::plot::{
    FONT_FAMILY, Image, PALETTE, check_png_path, drawing_failed, plot_error,
    register_embedded_font, write_png,
};
use crate::{Error, Result};

const SIZE: (u32, u32) = (900, 560);

/// A set of points drawn as a line or as dots, with a legend entry.
pub(crate) struct Series {
    pub(crate) label: String,
    pub(crate) points: Vec<(f64, f64)>,
    pub(crate) line: bool,
}

/// An x-y chart with some labelled points marked on it.
pub(crate) struct XyChart<'a> {
    pub(crate) title: &'a str,
    pub(crate) x_desc: &'a str,
    pub(crate) y_desc: &'a str,
    pub(crate) log_x: bool,
    pub(crate) series: Vec<Series>,
    /// (label, x, y), drawn as large circles.
    pub(crate) marks: Vec<(String, f64, f64)>,
}

/// The span of `values` with a margin (`log`: in decades), or `0..1` when empty.
fn span(values: impl Iterator<Item = f64>, log: bool) -> Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && (!log || *v > 0.0))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return if log { 1e-3..1.0 } else { 0.0..1.0 };
    }
    if log {
        return lo / 1.5..hi * 1.5;
    }
    let pad = ((hi - lo) * 0.06)
        .max(lo.abs().max(hi.abs()) * 1e-3)
        .max(1e-12);
    lo - pad..hi + pad
}

impl XyChart<'_> {
    fn finite(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .chain(self.marks.iter().map(|m| (m.1, m.2)))
            .filter(|(x, y)| x.is_finite() && y.is_finite())
    }

    fn render(&self) -> std::result::Result<Image, String> {
        register_embedded_font()?;
        let x = span(self.finite().map(|p| p.0), self.log_x);
        let y = span(self.finite().map(|p| p.1), false);
        let mut image = Image::white(SIZE);
        image.draw(|root| {
            let mut builder = ChartBuilder::on(root);
            builder
                .caption(self.title, (FONT_FAMILY, 22))
                .margin(14)
                .x_label_area_size(48)
                .y_label_area_size(72);
            if self.log_x {
                let mut chart = builder
                    .build_cartesian_2d(x.log_scale(), y)
                    .map_err(drawing_failed)?;
                chart
                    .configure_mesh()
                    .x_desc(self.x_desc)
                    .y_desc(self.y_desc)
                    .x_label_formatter(&|v| format!("{v:.0e}"))
                    .label_style((FONT_FAMILY, 14))
                    .draw()
                    .map_err(drawing_failed)?;
                self.draw_series(&mut chart)
            } else {
                let mut chart = builder.build_cartesian_2d(x, y).map_err(drawing_failed)?;
                chart
                    .configure_mesh()
                    .x_desc(self.x_desc)
                    .x_label_formatter(&|v| {
                        // Whole numbers (trials) without a decimal point.
                        if (v - v.round()).abs() < 1e-9 {
                            format!("{v:.0}")
                        } else {
                            format!("{v}")
                        }
                    })
                    .y_desc(self.y_desc)
                    .label_style((FONT_FAMILY, 14))
                    .draw()
                    .map_err(drawing_failed)?;
                self.draw_series(&mut chart)
            }
        })?;
        Ok(image)
    }

    fn draw_series<'a, DB, X, Y>(
        &self,
        chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    ) -> std::result::Result<(), String>
    where
        DB: DrawingBackend + 'a,
        X: Ranged<ValueType = f64>,
        Y: Ranged<ValueType = f64>,
    {
        for (i, series) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let points = series
                .points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite());
            let drawn = if series.line {
                chart
                    .draw_series(LineSeries::new(points, color.stroke_width(2)))
                    .map_err(drawing_failed)?
            } else {
                chart
                    .draw_series(points.map(|p| Circle::new(p, 4, color.filled())))
                    .map_err(drawing_failed)?
            };
            let line = series.line;
            drawn
                .label(series.label.clone())
                .legend(move |(x, y)| -> DynElement<'static, _, _> {
                    if line {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                            .into_dyn()
                    } else {
                        Circle::new((x + 10, y), 4, color.filled()).into_dyn()
                    }
                });
        }
        for (i, (label, x, y)) in self.marks.iter().enumerate() {
            let color = PALETTE[(self.series.len() + i) % PALETTE.len()];
            chart
                .draw_series(std::iter::once(Circle::new((*x, *y), 7, color.filled())))
                .map_err(drawing_failed)?
                .label(label.clone())
                .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT_FAMILY, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(drawing_failed)
    }

    /// Renders the chart and writes it as a PNG at `path`.
    pub(crate) fn write(&self, path: &Path) -> Result<()> {
        let image = check_png_path(path)
            .and_then(|()| self.render())
            .map_err(|detail| plot_error(path, detail))?;
        write_png(path, &image)
    }
}

/// A horizontal bar chart of `(label, value)`, largest first, written at `path`.
pub(crate) fn bars(title: &str, x_desc: &str, bars: &[(String, f64)], path: &Path) -> Result<()> {
    if bars.is_empty() {
        return Err(plot_error(path, "nothing to plot".into()));
    }
    let render = || -> std::result::Result<Image, String> {
        register_embedded_font()?;
        let top = bars.iter().map(|b| b.1).fold(0.0f64, f64::max).max(1e-12) * 1.1;
        let n = bars.len();
        let mut image = Image::white((SIZE.0, SIZE.1.max(80 + 40 * n as u32)));
        image.draw(|root| {
            let mut chart = ChartBuilder::on(root)
                .caption(title, (FONT_FAMILY, 22))
                .margin(14)
                .x_label_area_size(48)
                .y_label_area_size(160)
                .build_cartesian_2d(0.0..top, -0.5..n as f64 - 0.5)
                .map_err(drawing_failed)?;
            // One bar a whole number of the y axis, the first at the top, labelled
            // with its name there.
            let name = |y: &f64| {
                let r = y.round();
                if (y - r).abs() > 1e-6 || r < 0.0 || r >= n as f64 {
                    return String::new();
                }
                bars[n - 1 - r as usize].0.clone()
            };
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .y_labels(n + 1)
                .y_label_formatter(&name)
                .disable_y_mesh()
                .label_style((FONT_FAMILY, 14))
                .draw()
                .map_err(drawing_failed)?;
            chart
                .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
                    let y = (n - 1 - i) as f64;
                    Rectangle::new([(0.0, y - 0.35), (*v, y + 0.35)], PALETTE[0].filled())
                }))
                .map_err(drawing_failed)?;
            Ok(())
        })?;
        Ok(image)
    };
    let image = check_png_path(path)
        .and_then(|()| render())
        .map_err(|detail| plot_error(path, detail))?;
    write_png(path, &image)
}

/// An error for a plot of nothing.
pub(crate) fn empty(path: &Path, what: &str) -> Error {
    plot_error(path, format!("no {what} to plot"))
}
