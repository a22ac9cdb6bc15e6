//! Training curves as PNG images: [`plot_history`] draws one panel per quantity of a
//! [`History`] (the loss, then each metric; training and validation on the same panel),
//! and [`plot_runs`] compares one quantity across several runs on one chart.
//!
//! Text is drawn with DejaVu Sans, compiled into the library, so a plot looks the same on
//! a machine without system fonts or fontconfig. A plot is rendered in memory first and
//! then written to a temporary file beside the target, which is renamed over it: a
//! failed plot never leaves a partial file, and an older plot at that path stays intact.
//!
//! The first plot registers the embedded font with plotters as its `sans-serif` family,
//! for the whole process.

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use plotters::backend::RGBPixel;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::register_font;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::{Error, History, Result};

/// The family plotters asks for by default; the embedded font is registered under it.
pub(crate) const FONT_FAMILY: &str = "sans-serif";
/// DejaVu Sans 2.37; provenance and licence in `assets/fonts/`.
static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

/// One panel of [`plot_history`], in pixels.
const PANEL_SIZE: (u32, u32) = (640, 420);
/// Panels a row in [`plot_history`].
const MAX_COLUMNS: usize = 2;
/// The chart of [`plot_runs`], legend excluded, in pixels.
const RUNS_CHART_SIZE: (u32, u32) = (900, 560);
/// At most this many panels in [`plot_history`] and lines in [`plot_runs`]: beyond it a
/// picture is unreadable, and its size would grow without bound.
const MAX_CURVES: usize = 100;
/// Run names longer than this are shortened in the legend.
const MAX_LABEL_CHARS: usize = 40;

const TITLE_SIZE: u32 = 22;
const AXIS_DESC_SIZE: u32 = 17;
const TICK_SIZE: u32 = 14;
const LEGEND_SIZE: u32 = 15;
/// Height of one legend entry of [`plot_runs`].
const LEGEND_ROW: i32 = 24;

const TRAIN_COLOR: RGBColor = RGBColor(31, 119, 180);
const VALIDATION_COLOR: RGBColor = RGBColor(255, 127, 14);
/// Matplotlib's `tab10`: distinct, and readable by most colour-blind readers.
pub(crate) const PALETTE: [RGBColor; 10] = [
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

/// Draws `history` as a PNG at `path` (which must end in `.png`): one panel per
/// quantity, the loss first, then each metric in the order it was logged. A metric `x`
/// and its validation counterpart `val_x` share a panel, training solid in blue,
/// validation dashed in orange. The x axis is the epoch, counted from 1.
///
/// Non-finite values (a diverged loss) leave a gap in their line. An existing file at
/// `path` is replaced only once the new image is complete.
///
/// # Errors
///
/// [`Error::Plot`] when `path` does not end in `.png`, the history has no epoch or no
/// value, or rendering fails; [`Error::Io`] when the file cannot be written (a missing
/// directory, no permission). Both name `path`.
pub fn plot_history(history: &History, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let image = check_png_path(path)
        .and_then(|()| render_history(history))
        .map_err(|detail| plot_error(path, detail))?;
    write_png(path, &image)
}

/// Draws one quantity of several runs on one chart, one line per run, and writes it as a
/// PNG at `path` (which must end in `.png`). `runs` pairs each run's name, shown in the
/// legend, with its history; `metric` is a name the histories logged, such as `val_loss`
/// or `accuracy`. The x axis is the epoch, counted from 1; runs of different lengths
/// share it.
///
/// # Errors
///
/// [`Error::Plot`] when `path` does not end in `.png`, `runs` is empty, a run has no
/// epoch or never logged `metric` (the message names the run and what it did log), or
/// rendering fails; [`Error::Io`] when the file cannot be written. Both name `path`.
pub fn plot_runs(runs: &[(&str, &History)], metric: &str, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let image = check_png_path(path)
        .and_then(|()| render_runs(runs, metric))
        .map_err(|detail| plot_error(path, detail))?;
    write_png(path, &image)
}

pub(crate) fn plot_error(path: &Path, detail: String) -> Error {
    Error::Plot {
        path: path.to_path_buf(),
        detail,
    }
}

pub(crate) fn check_png_path(path: &Path) -> Result<(), String> {
    match path.extension() {
        Some(ext) if ext.eq_ignore_ascii_case("png") => Ok(()),
        _ => Err("plots are written as PNG: give a path ending in `.png`".to_owned()),
    }
}

/// Registers the embedded font with plotters, once per process; later calls return the
/// first outcome.
pub(crate) fn register_embedded_font() -> Result<(), String> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok =
        *REGISTERED.get_or_init(|| register_font(FONT_FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err("the embedded font could not be loaded".to_owned())
    }
}

/// An RGB picture: 3 bytes a pixel, rows top to bottom.
pub(crate) struct Image {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Image {
    pub(crate) fn white((width, height): (u32, u32)) -> Self {
        let len = width as usize * height as usize * 3;
        Self {
            width,
            height,
            rgb: vec![255; len],
        }
    }

    /// Runs `draw` on a drawing area over the whole picture.
    pub(crate) fn draw(
        &mut self,
        draw: impl FnOnce(&DrawingArea<BitMapBackend<'_, RGBPixel>, Shift>) -> Result<(), String>,
    ) -> Result<(), String> {
        let size = (self.width, self.height);
        let backend = BitMapBackend::<RGBPixel>::with_buffer_and_format(&mut self.rgb, size)
            .map_err(|e| format!("cannot draw into the image buffer: {e}"))?;
        let root = backend.into_drawing_area();
        draw(&root)?;
        root.present().map_err(drawing_failed)
    }
}

pub(crate) fn drawing_failed(e: impl std::fmt::Display) -> String {
    format!("drawing failed: {e}")
}

/// One curve: a label for the legend and a value per epoch (NaN where there is none).
struct Line {
    label: String,
    color: RGBColor,
    dashed: bool,
    /// (epoch counted from 1, value).
    points: Vec<(i32, f64)>,
}

impl Line {
    fn from_history(history: &History, name: &str, label: String, color: RGBColor) -> Self {
        let points = history
            .epochs
            .iter()
            .map(|e| (epoch_number(e.epoch), e.get(name).unwrap_or(f64::NAN)))
            .collect();
        Self {
            label,
            color,
            dashed: false,
            points,
        }
    }

    /// The points that can be drawn.
    fn finite(&self) -> impl Iterator<Item = (i32, f64)> + '_ {
        self.points.iter().copied().filter(|&(_, y)| drawable(y))
    }

    /// The runs of consecutive drawable points; any other value breaks the line.
    fn segments(&self) -> Vec<Vec<(i32, f64)>> {
        let mut segments = vec![Vec::new()];
        for &(x, y) in &self.points {
            if drawable(y) {
                segments.last_mut().into_iter().for_each(|s| s.push((x, y)));
            } else if segments.last().is_some_and(|s| !s.is_empty()) {
                segments.push(Vec::new());
            }
        }
        segments.retain(|s| !s.is_empty());
        segments
    }

    fn style(&self) -> ShapeStyle {
        self.color.stroke_width(2)
    }
}

/// Whether `y` can be drawn: finite, and small enough that the axis span stays finite.
fn drawable(y: f64) -> bool {
    y.is_finite() && y.abs() <= 1e300
}

/// The x coordinate of the epoch numbered `epoch` from 0.
fn epoch_number(epoch: usize) -> i32 {
    i32::try_from(epoch.saturating_add(1)).unwrap_or(i32::MAX)
}

/// One chart: a title, the quantity on the y axis, its lines.
struct Chart {
    title: String,
    y_desc: String,
    lines: Vec<Line>,
}

impl Chart {
    fn x_range(&self) -> Range<i32> {
        let (lo, hi) = self.epochs().into_inner();
        if lo > hi {
            0..2
        } else if lo == hi {
            lo.saturating_sub(1)..hi.saturating_add(1)
        } else {
            lo..hi
        }
    }

    /// The epochs logged in any line, first to last.
    fn epochs(&self) -> RangeInclusive<i32> {
        let xs = self.lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
        let (lo, hi) = xs.fold((i32::MAX, i32::MIN), |(lo, hi), x| (lo.min(x), hi.max(x)));
        lo..=hi
    }

    fn y_range(&self) -> Range<f64> {
        let ys = self.lines.iter().flat_map(|l| l.finite().map(|p| p.1));
        let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
            (lo.min(y), hi.max(y))
        });
        if lo > hi {
            return 0.0..1.0;
        }
        let scale = lo.abs().max(hi.abs());
        // Near zero the margin is absolute: a relative one would vanish.
        let pad = if scale < 1e-200 {
            1.0
        } else {
            ((hi - lo) * 0.08).max(scale * 1e-3)
        };
        lo - pad..hi + pad
    }

    /// The corner of the plotting area that the fewest points fall in, for the legend.
    fn legend_corner(&self, x: &Range<i32>, y: &Range<f64>) -> SeriesLabelPosition {
        let width = f64::from(x.end.saturating_sub(x.start).max(1));
        let height = (y.end - y.start).max(f64::MIN_POSITIVE);
        let mut counts = [0usize; 4];
        for (px, py) in self.lines.iter().flat_map(Line::finite) {
            let fx = f64::from(px.saturating_sub(x.start)) / width;
            let fy = (py - y.start) / height;
            let (right, left, top, bottom) = (fx > 0.6, fx < 0.4, fy > 0.7, fy < 0.3);
            counts[0] += usize::from(right && top);
            counts[1] += usize::from(right && bottom);
            counts[2] += usize::from(left && top);
            counts[3] += usize::from(left && bottom);
        }
        let corners = [
            SeriesLabelPosition::UpperRight,
            SeriesLabelPosition::LowerRight,
            SeriesLabelPosition::UpperLeft,
            SeriesLabelPosition::LowerLeft,
        ];
        let best = (0..4).min_by_key(|&i| counts[i]).unwrap_or(0);
        corners[best].clone()
    }

    /// Draws the chart on `area`, with its legend inside the plot when `legend` is set.
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        legend: bool,
    ) -> Result<(), String> {
        let (x_range, y_range) = (self.x_range(), self.y_range());
        let corner = self.legend_corner(&x_range, &y_range);
        let epochs = usize::try_from(x_range.end.saturating_sub(x_range.start)).unwrap_or(0);
        // A single epoch is drawn with a margin either side; no label for those.
        let logged = self.epochs();
        let x_label = |x: &i32| {
            if logged.contains(x) {
                x.to_string()
            } else {
                String::new()
            }
        };
        let y_step = (y_range.end - y_range.start) / 8.0;
        let y_label = |y: &f64| tick_label(*y, y_step);
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, (FONT_FAMILY, TITLE_SIZE))
            .margin(14)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(x_range, y_range)
            .map_err(drawing_failed)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(&self.y_desc)
            .x_labels((epochs + 1).min(10))
            .y_labels(8)
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .label_style((FONT_FAMILY, TICK_SIZE))
            .axis_desc_style((FONT_FAMILY, AXIS_DESC_SIZE))
            .bold_line_style(BLACK.mix(0.12))
            .light_line_style(BLACK.mix(0.04))
            .draw()
            .map_err(drawing_failed)?;

        for line in &self.lines {
            let style = line.style();
            let mut segments = line.segments();
            if segments.is_empty() {
                // An all-NaN line still gets its legend entry.
                segments.push(Vec::new());
            }
            for (i, segment) in segments.into_iter().enumerate() {
                let series = if line.dashed {
                    chart.draw_series(DashedLineSeries::new(segment, 9, 6, style))
                } else {
                    chart.draw_series(LineSeries::new(segment, style))
                }
                .map_err(drawing_failed)?;
                if i == 0 {
                    let dashed = line.dashed;
                    series
                        .label(line.label.as_str())
                        .legend(move |(x, y)| legend_sample(x, y, style, dashed));
                }
            }
            chart
                .draw_series(line.finite().map(|p| Circle::new(p, 3, style.filled())))
                .map_err(drawing_failed)?;
        }

        if legend {
            chart
                .configure_series_labels()
                .position(corner)
                .margin(10)
                .legend_area_size(34)
                .label_font((FONT_FAMILY, LEGEND_SIZE))
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK.mix(0.3))
                .draw()
                .map_err(drawing_failed)?;
        }
        Ok(())
    }
}

/// A y tick label: as many decimals as ticks `step` apart need, all ticks alike;
/// scientific notation for very large or very small steps.
fn tick_label(y: f64, step: f64) -> String {
    let magnitude = step.abs().log10().floor();
    if !magnitude.is_finite() {
        return format!("{y}");
    }
    if !(-5.0..6.0).contains(&magnitude) {
        return format!("{y:.2e}");
    }
    // In -5..6 here, so the cast is exact.
    let decimals = (-magnitude).max(0.0) as usize;
    format!("{y:.decimals$}")
}

/// The sample of a line drawn beside its legend label, `(x, y)` its left middle.
fn legend_sample<DB: DrawingBackend>(
    x: i32,
    y: i32,
    style: ShapeStyle,
    dashed: bool,
) -> DynElement<'static, DB, (i32, i32)> {
    let ends = [(x, y), (x + 28, y)];
    if dashed {
        DashedPathElement::new(ends, 9, 6, style).into_dyn()
    } else {
        PathElement::new(ends, style).into_dyn()
    }
}

/// The names logged in any epoch, in the order they first appear.
fn logged_names(history: &History) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for (name, _) in history.epochs.iter().flat_map(|e| &e.values) {
        if !names.contains(&name.as_str()) {
            names.push(name);
        }
    }
    names
}

/// One chart per quantity: `loss` first, then the rest in logged order; `val_x` joins
/// `x`.
fn history_charts(history: &History) -> Vec<Chart> {
    let names = logged_names(history);
    let mut quantities: Vec<&str> = Vec::new();
    for name in &names {
        let quantity = name.strip_prefix("val_").unwrap_or(name);
        if !quantities.contains(&quantity) {
            quantities.push(quantity);
        }
    }
    if let Some(i) = quantities.iter().position(|q| *q == "loss") {
        let loss = quantities.remove(i);
        quantities.insert(0, loss);
    }
    quantities
        .into_iter()
        .map(|quantity| {
            let validation = format!("val_{quantity}");
            let mut lines = Vec::new();
            if names.contains(&quantity) {
                lines.push(Line::from_history(
                    history,
                    quantity,
                    "train".to_owned(),
                    TRAIN_COLOR,
                ));
            }
            if names.contains(&validation.as_str()) {
                let mut line = Line::from_history(
                    history,
                    &validation,
                    "validation".to_owned(),
                    VALIDATION_COLOR,
                );
                line.dashed = true;
                lines.push(line);
            }
            Chart {
                title: quantity.to_owned(),
                y_desc: quantity.to_owned(),
                lines,
            }
        })
        .collect()
}

fn render_history(history: &History) -> Result<Image, String> {
    if history.epochs.is_empty() {
        return Err("the history is empty: there is no epoch to plot".to_owned());
    }
    let charts = history_charts(history);
    if charts.is_empty() {
        return Err("the history logged no values: there is nothing to plot".to_owned());
    }
    if charts.len() > MAX_CURVES {
        return Err(format!(
            "the history logged {} quantities: at most {MAX_CURVES} fit one picture",
            charts.len()
        ));
    }
    register_embedded_font()?;
    let columns = charts.len().min(MAX_COLUMNS);
    let rows = charts.len().div_ceil(columns);
    let size = (
        PANEL_SIZE.0 * u32::try_from(columns).unwrap_or(1),
        PANEL_SIZE.1 * u32::try_from(rows).unwrap_or(1),
    );
    let mut image = Image::white(size);
    image.draw(|root| {
        for (chart, area) in charts.iter().zip(root.split_evenly((rows, columns))) {
            chart.draw(&area, true)?;
        }
        Ok(())
    })?;
    Ok(image)
}

fn render_runs(runs: &[(&str, &History)], metric: &str) -> Result<Image, String> {
    if runs.is_empty() {
        return Err(format!("no run to plot `{metric}` of"));
    }
    if runs.len() > MAX_CURVES {
        return Err(format!(
            "{} runs: at most {MAX_CURVES} fit one chart",
            runs.len()
        ));
    }
    let mut lines = Vec::with_capacity(runs.len());
    for (i, &(name, history)) in runs.iter().enumerate() {
        if history.epochs.is_empty() {
            return Err(format!("run `{name}` has no epoch to plot"));
        }
        let names = logged_names(history);
        if !names.contains(&metric) {
            return Err(format!(
                "run `{name}` did not log `{metric}` (it logged: {})",
                names.join(", ")
            ));
        }
        let color = PALETTE[i % PALETTE.len()];
        let mut line = Line::from_history(history, metric, shorten(name), color);
        // Past the palette, dashes tell the repeated colours apart.
        line.dashed = (i / PALETTE.len()) % 2 == 1;
        lines.push(line);
    }
    register_embedded_font()?;

    let legend_font = (FONT_FAMILY, LEGEND_SIZE).into_font();
    let mut label_width = 0;
    for line in &lines {
        let (w, _) = legend_font
            .box_size(&line.label)
            .map_err(|e| format!("cannot lay out the legend: {e:?}"))?;
        label_width = label_width.max(w);
    }
    let legend_width = label_width + 70;
    let rows_height = u32::try_from(lines.len())
        .unwrap_or(u32::MAX)
        .saturating_mul(24);
    let size = (
        RUNS_CHART_SIZE.0 + legend_width,
        RUNS_CHART_SIZE.1.max(rows_height.saturating_add(100)),
    );
    let chart = Chart {
        title: metric.to_owned(),
        y_desc: metric.to_owned(),
        lines,
    };
    let mut image = Image::white(size);
    image.draw(|root| {
        let (plot, legend) = root.split_horizontally(RUNS_CHART_SIZE.0);
        chart.draw(&plot, false)?;
        draw_side_legend(&legend, &chart.lines)
    })?;
    Ok(image)
}

/// A legend beside the chart, one row per line, so that it never hides a curve.
fn draw_side_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    lines: &[Line],
) -> Result<(), String> {
    let text = TextStyle::from((FONT_FAMILY, LEGEND_SIZE).into_font())
        .pos(Pos::new(HPos::Left, VPos::Center));
    let top = 14 + i32::try_from(TITLE_SIZE).unwrap_or(0) + 24;
    for (row, line) in (0i32..).zip(lines) {
        let y = top + row * LEGEND_ROW;
        area.draw(&legend_sample(8, y, line.style(), line.dashed))
            .map_err(drawing_failed)?;
        area.draw(&Text::new(line.label.as_str(), (46, y), text.clone()))
            .map_err(drawing_failed)?;
    }
    Ok(())
}

/// `name`, cut to [`MAX_LABEL_CHARS`] characters with an ellipsis.
fn shorten(name: &str) -> String {
    if name.chars().count() <= MAX_LABEL_CHARS {
        name.to_owned()
    } else {
        let mut short: String = name.chars().take(MAX_LABEL_CHARS - 1).collect();
        short.push('…');
        short
    }
}

/// Encodes `image` as PNG into a temporary file beside `path`, then renames it over
/// `path`.
pub(crate) fn write_png(path: &Path, image: &Image) -> Result<()> {
    let temp = TempFile::beside(path)?;
    {
        let size = (image.width, image.height);
        let mut backend = BitMapBackend::new(&temp.path, size);
        backend
            .blit_bitmap((0, 0), size, &image.rgb)
            .and_then(|()| backend.present())
            .map_err(|e| plot_error(path, format!("cannot write the PNG: {e}")))?;
    }
    std::fs::rename(&temp.path, path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    temp.keep();
    Ok(())
}

/// A file that is removed when dropped, unless kept.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl TempFile {
    /// Creates an empty, uniquely named file in the directory of `target`; the name ends
    /// in `.png`, which plotters needs to pick the format.
    fn beside(target: &Path) -> Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = match target.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let stem = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for _ in 0..64 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!(".{stem}.{}-{n}.tmp.png", std::process::id()));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(_) => return Ok(Self { path, keep: false }),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(source) => {
                    return Err(Error::Io {
                        path: target.to_path_buf(),
                        source,
                    });
                }
            }
        }
        Err(plot_error(
            target,
            format!("cannot create a temporary file in {}", dir.display()),
        ))
    }

    fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            // Best effort: the file may already be gone.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests;
