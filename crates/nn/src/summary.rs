//! The Keras-like table that a generated model's `summary()` prints.

use std::fmt::Write;

use kiln_shape::Shape;

use crate::LayerInfo;

fn tuple(shape: &Shape) -> String {
    let dims: Vec<String> = shape.dims().iter().map(ToString::to_string).collect();
    format!("({})", dims.join(", "))
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The table of `layers` for a model called `model` with per-sample input `input`:
/// layer name and kind, per-sample output shape, parameter count, and totals. The
/// layers inside a block are indented under it, and the block's row counts their
/// parameters.
pub fn summary(model: &str, input: Shape, layers: &[LayerInfo]) -> String {
    let rows: Vec<(String, String, String)> =
        std::iter::once(("input (Input)".to_string(), tuple(&input), "0".to_string()))
            .chain(layers.iter().map(|l| {
                (
                    format!("{}{} ({})", "  ".repeat(l.depth), l.name, l.kind),
                    tuple(&l.output_shape),
                    thousands(l.parameters + l.state),
                )
            }))
            .collect();
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(12) + 2;
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(12) + 2;
    let w2 = rows.iter().map(|r| r.2.len()).max().unwrap_or(0).max(7);
    let width = w0 + w1 + w2 + 1;
    // A block's row already counts the layers inside it.
    let top = layers.iter().filter(|l| l.depth == 0);
    let trainable: usize = top.clone().map(|l| l.parameters).sum();
    let state: usize = top.map(|l| l.state).sum();
    let total = trainable + state;
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(s, "Model: \"{model}\"");
    let _ = writeln!(s, "{}", "_".repeat(width));
    let _ = writeln!(
        s,
        " {:<w0$}{:<w1$}{:>w2$}",
        "Layer (type)", "Output Shape", "Param #"
    );
    let _ = writeln!(s, "{}", "=".repeat(width));
    for (i, (name, shape, params)) in rows.iter().enumerate() {
        if i > 0 {
            let _ = writeln!(s, "{}", "-".repeat(width));
        }
        let _ = writeln!(s, " {name:<w0$}{shape:<w1$}{params:>w2$}");
    }
    let _ = writeln!(s, "{}", "=".repeat(width));
    let _ = writeln!(
        s,
        "Total params: {} ({:.2} KB)",
        thousands(total),
        total as f64 * 4.0 / 1024.0
    );
    let _ = writeln!(s, "Trainable params: {}", thousands(trainable));
    let _ = writeln!(s, "Non-trainable params: {}", thousands(state));
    let _ = writeln!(
        s,
        "Output shapes are per sample; the batch size is chosen at run time."
    );
    let _ = write!(s, "{}", "_".repeat(width));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rows_and_totals() {
        let layers = [
            LayerInfo {
                name: "conv1",
                kind: "Conv2d",
                output_shape: Shape::new(&[30, 30, 32]),
                parameters: 896,
                state: 0,
                depth: 0,
            },
            LayerInfo {
                name: "out",
                kind: "Dense",
                output_shape: Shape::new(&[10]),
                parameters: 159_306,
                state: 0,
                depth: 0,
            },
        ];
        let s = summary("Net", Shape::new(&[32, 32, 3]), &layers);
        assert!(s.starts_with("Model: \"Net\""));
        assert!(s.contains(" conv1 (Conv2d)"));
        assert!(s.contains("(30, 30, 32)"));
        assert!(s.contains("(10)"));
        assert!(s.contains("159,306"));
        assert!(s.contains("Total params: 160,202 (625.79 KB)"), "{s}");
    }

    #[test]
    fn blocks_indent_their_layers_and_count_once() {
        let row = |name, kind, parameters, depth| LayerInfo {
            name,
            kind,
            output_shape: Shape::new(&[8, 8, 4]),
            parameters,
            state: 0,
            depth,
        };
        let layers = [
            row("res", "Residual", 300, 0),
            row("res.a", "Conv2d", 148, 1),
            row("res.b", "Conv2d", 148, 1),
            row("res.shortcut", "Conv2d", 4, 1),
            row("out", "Conv2d", 5, 0),
        ];
        let s = summary("Net", Shape::new(&[8, 8, 4]), &layers);
        assert!(s.contains(" res (Residual)"), "{s}");
        assert!(s.contains("   res.shortcut (Conv2d)"), "{s}");
        assert!(s.contains("Total params: 305 "), "{s}");
    }

    #[test]
    fn saved_state_counts_as_keras_counts_it() {
        let bn = LayerInfo {
            name: "bn",
            kind: "BatchNorm",
            output_shape: Shape::new(&[4, 4, 8]),
            parameters: 16,
            state: 16,
            depth: 0,
        };
        let s = summary("Net", Shape::new(&[4, 4, 8]), &[bn]);
        assert!(s.contains(" bn (BatchNorm)"), "{s}");
        assert!(s.contains("Total params: 32 "), "{s}");
        assert!(s.contains("Trainable params: 16\n"), "{s}");
        assert!(s.contains("Non-trainable params: 16\n"), "{s}");
    }
}
