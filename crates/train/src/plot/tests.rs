//! Rendering checked on the in-memory picture: panels, curves, legends and text.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::EpochLog;

fn history(epochs: usize) -> History {
    let epochs = (0..epochs)
        .map(|epoch| {
            let t = epoch as f64;
            let values = [
                ("loss", 2.0 / (1.0 + t)),
                ("accuracy", 0.1 + 0.08 * t),
                ("val_loss", 2.2 / (1.0 + t)),
                ("val_accuracy", 0.08 + 0.07 * t),
            ];
            EpochLog {
                epoch,
                values: values.map(|(n, v)| (n.to_owned(), v)).to_vec(),
                learning_rate: 1e-3,
                seconds: 1.0,
            }
        })
        .collect();
    History { epochs }
}

fn pixel(image: &Image, x: u32, y: u32) -> [u8; 3] {
    let i = (y as usize * image.width as usize + x as usize) * 3;
    [image.rgb[i], image.rgb[i + 1], image.rgb[i + 2]]
}

/// Pixels of the rectangle `x`, `y` that satisfy `keep`.
fn count(image: &Image, x: Range<u32>, y: Range<u32>, keep: impl Fn([u8; 3]) -> bool) -> usize {
    y.flat_map(|y| x.clone().map(move |x| (x, y)))
        .filter(|&(x, y)| keep(pixel(image, x, y)))
        .count()
}

fn is(color: RGBColor) -> impl Fn([u8; 3]) -> bool {
    move |p| p == [color.0, color.1, color.2]
}

/// Text is anti-aliased grey to black; nothing else in a title strip is.
fn dark(p: [u8; 3]) -> bool {
    p.iter().all(|&c| c < 128)
}

#[test]
fn history_has_a_panel_per_quantity_with_both_curves_and_text() {
    let image = render_history(&history(10)).unwrap();
    assert_eq!(
        (image.width, image.height),
        (2 * PANEL_SIZE.0, PANEL_SIZE.1)
    );
    assert_eq!(
        image.rgb.len(),
        image.width as usize * image.height as usize * 3
    );
    let (w, h) = PANEL_SIZE;
    for panel in [0..w, w..2 * w] {
        let ink = count(&image, panel.clone(), 0..h, |p| p != [255; 3]);
        assert!(ink > 5_000, "panel {panel:?} has {ink} drawn pixels");
        // Training and validation curves, each in its colour.
        assert!(count(&image, panel.clone(), 0..h, is(TRAIN_COLOR)) > 500);
        assert!(count(&image, panel.clone(), 0..h, is(VALIDATION_COLOR)) > 300);
        // The title: the embedded font draws without any system font.
        let title = count(&image, panel.start + 200..panel.end - 200, 0..40, dark);
        assert!(title > 30, "panel {panel:?} title has {title} dark pixels");
    }
}

#[test]
fn three_quantities_take_two_rows() {
    let mut h = history(4);
    for e in &mut h.epochs {
        e.values.push(("top_5".to_owned(), 0.5));
    }
    let charts = history_charts(&h);
    let titles: Vec<&str> = charts.iter().map(|c| c.title.as_str()).collect();
    assert_eq!(titles, ["loss", "accuracy", "top_5"]);
    assert_eq!(charts[2].lines.len(), 1);
    let image = render_history(&h).unwrap();
    assert_eq!(
        (image.width, image.height),
        (2 * PANEL_SIZE.0, 2 * PANEL_SIZE.1)
    );
    let (w, h) = PANEL_SIZE;
    // The empty fourth cell stays white.
    assert_eq!(count(&image, w..2 * w, h..2 * h, |p| p != [255; 3]), 0);
}

#[test]
fn loss_comes_first_and_validation_joins_its_metric() {
    let mut h = history(2);
    for e in &mut h.epochs {
        e.values.reverse();
        e.values.push(("val_only".to_owned(), 1.0));
    }
    let charts = history_charts(&h);
    let titles: Vec<&str> = charts.iter().map(|c| c.title.as_str()).collect();
    assert_eq!(titles, ["loss", "accuracy", "only"]);
    let labels: Vec<&str> = charts[1].lines.iter().map(|l| l.label.as_str()).collect();
    assert_eq!(labels, ["train", "validation"]);
    assert!(!charts[1].lines[0].dashed && charts[1].lines[1].dashed);
    assert_eq!(charts[2].lines.len(), 1);
    assert_eq!(charts[2].lines[0].label, "validation");
    // Epochs are counted from 1 on the x axis.
    assert_eq!(charts[0].lines[0].points[0].0, 1);
}

#[test]
fn runs_have_a_line_and_a_legend_entry_each() {
    let (a, mut b, mut c) = (history(10), history(8), history(12));
    // Apart, so that no line hides another.
    for (h, shift) in [(&mut b, 1.0), (&mut c, 2.0)] {
        for e in &mut h.epochs {
            e.values.iter_mut().for_each(|(_, v)| *v += shift);
        }
    }
    let runs = [("adam", &a), ("sgd", &b), ("rmsprop", &c)];
    let image = render_runs(&runs, "val_loss").unwrap();
    let (plot, legend) = (0..RUNS_CHART_SIZE.0, RUNS_CHART_SIZE.0..image.width);
    for color in &PALETTE[..3] {
        assert!(count(&image, plot.clone(), 0..image.height, is(*color)) > 300);
        assert!(count(&image, legend.clone(), 0..image.height, is(*color)) > 20);
    }
    assert!(
        count(&image, legend, 0..image.height, dark) > 100,
        "legend text"
    );
}

#[test]
fn non_finite_values_break_the_line() {
    let line = Line {
        label: String::new(),
        color: TRAIN_COLOR,
        dashed: false,
        points: vec![
            (1, 1.0),
            (2, f64::NAN),
            (3, f64::INFINITY),
            (4, 2.0),
            (5, 3.0),
            (6, f64::MAX),
        ],
    };
    assert_eq!(line.segments(), [vec![(1, 1.0)], vec![(4, 2.0), (5, 3.0)]]);
    let chart = Chart {
        title: String::new(),
        y_desc: String::new(),
        lines: vec![line],
    };
    let y = chart.y_range();
    assert!(y.start < 1.0 && y.end > 3.0 && y.end < 4.0, "{y:?}");
}

#[test]
fn a_diverged_run_still_plots() {
    let mut h = history(5);
    for e in &mut h.epochs[2..] {
        e.values[0].1 = f64::NAN;
    }
    h.epochs[1].values[0].1 = 1e308;
    render_history(&h).unwrap();
    for e in &mut h.epochs {
        e.values.iter_mut().for_each(|(_, v)| *v = f64::NAN);
    }
    render_history(&h).unwrap();
}

#[test]
fn ranges_never_collapse() {
    let chart = |ys: &[f64]| Chart {
        title: String::new(),
        y_desc: String::new(),
        lines: vec![Line {
            label: String::new(),
            color: TRAIN_COLOR,
            dashed: false,
            points: (1..).zip(ys.iter().copied()).collect(),
        }],
    };
    for ys in [&[0.0][..], &[0.5, 0.5], &[1e-250], &[], &[-3.0]] {
        let y = chart(ys).y_range();
        assert!(y.start < y.end, "{ys:?}: {y:?}");
        for v in ys {
            assert!(y.contains(v), "{ys:?}: {y:?}");
        }
    }
    assert_eq!(chart(&[1.0]).x_range(), 0..2);
    assert_eq!(chart(&[1.0, 2.0, 3.0]).x_range(), 1..3);
}

#[test]
fn tick_labels_share_their_decimals() {
    assert_eq!(tick_label(0.5, 0.26), "0.5");
    assert_eq!(tick_label(2.0, 0.26), "2.0");
    assert_eq!(tick_label(0.9495, 0.0002), "0.9495");
    assert_eq!(tick_label(1200.0, 150.0), "1200");
    assert_eq!(tick_label(3e7, 1e6), "3.00e7");
}

#[test]
fn long_run_names_are_shortened() {
    assert_eq!(shorten("adam"), "adam");
    let long = "x".repeat(100);
    assert_eq!(shorten(&long).chars().count(), MAX_LABEL_CHARS);
    assert!(shorten(&long).ends_with('…'));
}

#[test]
fn font_registration_is_idempotent_across_threads() {
    let threads: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(register_embedded_font))
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    register_embedded_font().unwrap();
}
