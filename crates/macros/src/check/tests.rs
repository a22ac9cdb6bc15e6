//! Tests of the checks: shapes, names, blocks and their errors.

use super::*;
use crate::parse::parse;
use proc_macro2::TokenStream;
use quote::quote;

fn check_tokens(tokens: TokenStream) -> Result<Model, Vec<String>> {
    check(parse(tokens).unwrap())
        .map_err(|(_, err)| err.into_iter().map(|e| e.to_string()).collect())
}

/// The top-level layers of a model without blocks.
fn layers(model: &Model) -> Vec<&Layer> {
    model
        .nodes
        .iter()
        .filter_map(|n| match n {
            Node::Layer(l) => Some(l),
            Node::Block(_) => None,
        })
        .collect()
}

fn errors(tokens: TokenStream) -> Vec<String> {
    match check_tokens(tokens) {
        Ok(_) => panic!("the model checked"),
        Err(errors) => errors,
    }
}

#[test]
fn seed_cnn_checks() {
    let model = check_tokens(quote! {
        /// Docs.
        pub struct SeedCnn {
            input: [32, 32, 3],
            conv1: Conv2d(32, 3, relu),
            pool1: MaxPool2d(2),
            conv2: Conv2d(64, 3, relu),
            pool2: MaxPool2d(2),
            conv3: Conv2d(128, 3, relu),
            pool3: MaxPool2d(2),
            flat: Flatten,
            fc1: Dense(128, relu),
            out: Dense(10, softmax),
        }
    })
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(model.header.docs.len(), 1);
    assert_eq!(model.input, Shape::new(&[32, 32, 3]));
    let layers = layers(&model);
    assert_eq!(layers.len(), 9);
    let total: usize = layers.iter().map(|l| l.parameters).sum();
    assert_eq!(total, 160_202);
    assert_eq!(layers[5].output, Shape::new(&[2, 2, 128]));
    assert_eq!(layers[8].source, "Dense(10, softmax)");
    assert_eq!(layers[8].kind.name, "Dense");
}

#[test]
fn dense_without_flatten_names_both_layers() {
    assert_eq!(
        errors(quote! {
            struct M { input: [8, 8, 3], pool: MaxPool2d(2), fc1: Dense(128) }
        }),
        [
            "`fc1: Dense(128)` expects a rank-1 input but `pool` produces [4, 4, 3]: insert `Flatten` (or `GlobalAvgPool2d`) before it"
        ]
    );
    assert_eq!(
        errors(quote! { struct M { input: [8, 8, 3], fc1: Dense(128) } }),
        [
            "`fc1: Dense(128)` expects a rank-1 input but the input is [8, 8, 3]: insert `Flatten` (or `GlobalAvgPool2d`) before it"
        ]
    );
}

#[test]
fn after_a_shape_error_later_shapes_are_not_checked() {
    let errs = errors(quote! {
        struct M {
            input: [4, 4, 3],
            conv: Conv2d(8, 5),
            fc: Dense(10),
            drop: Dropout(2.0),
        }
    });
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].contains("at least 5x5"), "{errs:?}");
    assert_eq!(
        errs[1],
        "`drop: Dropout(2.0)`: `rate` must be in [0, 1), got 2.0"
    );
}

#[test]
fn spec_errors_count_once() {
    assert_eq!(
        errors(quote! { struct M { input: [4, 4, 3], p: MaxPool2d(0) } }),
        ["`p: MaxPool2d(0)`: `size` must be at least 1, got 0"]
    );
    assert_eq!(
        errors(quote! { struct M { input: [4], fc: Dense(units = 0) } }),
        ["`fc: Dense(units = 0)`: `units` must be at least 1, got 0"]
    );
}

#[test]
fn names_and_input_errors() {
    assert_eq!(
        errors(quote! { struct M { conv: Conv2d(3, 3) } }),
        [
            "`M` has no input shape: begin with `input: [height, width, channels]` or `input: [features]`"
        ]
    );
    assert_eq!(
        errors(quote! { struct M { input: [4], a: Relu, a: Relu, __b: Relu } }),
        [
            "there is already a layer named `a`: layer names become the struct's fields and must be unique",
            "layer names with `__` are reserved for the fields kiln generates",
        ]
    );
    assert_eq!(
        errors(quote! { struct M { input: [4, 0] , a: Relu } }),
        ["an input dimension must be at least 1, got 0"]
    );
    assert_eq!(
        errors(quote! { struct M { input: [1, 2, 3, 4], a: Relu } }).len(),
        1
    );
    assert_eq!(
        errors(quote! { struct M { input: [4] } }),
        ["`M` has no layers: add at least one after its input"]
    );
    assert_eq!(
        errors(quote! { #[derive(Clone)] struct M { input: [4], a: Relu } }).len(),
        1
    );
}

#[test]
fn unknown_layers_are_suggested() {
    // Every kind, in `KINDS`' order.
    let names: Vec<String> = kiln_shape::KINDS
        .iter()
        .map(|k| format!("`{}`", k.name))
        .collect();
    let (last, rest) = names.split_last().unwrap_or_else(|| panic!("no kinds"));
    assert_eq!(
        errors(
            quote! { struct M { input: [8, 8, 3], c: Conv2D(3, 3), p: MaxPooling2D(2), b: Upsampling } }
        ),
        [
            "unknown layer `Conv2D`: did you mean `Conv2d`?".to_string(),
            "unknown layer `MaxPooling2D`: did you mean `MaxPool2d`?".to_string(),
            format!(
                "unknown layer `Upsampling`; the layers are {} and {last}, and the blocks `Residual`, `Concat` and `Sequential`",
                rest.join(", ")
            ),
        ]
    );
    assert!(names.starts_with(&["`Dense`".to_string(), "`Conv2d`".to_string()]));
    assert_eq!(
        errors(
            quote! { struct M { input: [8, 3], c: Conv1D(4, 3), p: MaxPooling1D(2), g: GlobalAveragePooling1D } }
        ),
        [
            "unknown layer `Conv1D`: did you mean `Conv1d`?",
            "unknown layer `MaxPooling1D`: did you mean `MaxPool1d`?",
            "unknown layer `GlobalAveragePooling1D`: did you mean `GlobalAvgPool1d`?",
        ]
    );
}

#[test]
fn sequence_layers_check_their_numbers() {
    let model = check_tokens(quote! {
        struct Seq {
            input: [40, 3],
            c1: Conv1d(16, 5, relu, padding = causal, dilation = 2),
            p1: MaxPool1d(2),
            c2: Conv1d(8, 3, stride = 2),
            g: GlobalMaxPool1d,
            out: Dense(2, softmax),
        }
    })
    .unwrap_or_else(|e| panic!("{e:?}"));
    let layers = layers(&model);
    let shapes: Vec<&[usize]> = layers.iter().map(|l| l.output.dims()).collect();
    assert_eq!(shapes, [&[40, 16][..], &[20, 16], &[9, 8], &[8], &[2]]);
    assert_eq!(layers[0].parameters, 5 * 3 * 16 + 16);
    assert_eq!(
        errors(quote! { struct Seq { input: [40, 3], c: Conv1d(8, 9, dilation = 5) } }),
        [
            "`c: Conv1d(8, 9, dilation = 5)` expects a sequence of at least 41 time steps (its kernel of 9 with dilation 5) but the input is [40, 3]: use a smaller window, `padding = same` or `causal`, or less pooling before it"
        ]
    );
    let errs = errors(quote! { struct Seq { input: [8, 8, 3], c: Conv1d(8, 3) } });
    assert!(
        errs[0].starts_with("`c: Conv1d(8, 3)` expects a rank-2 input [time, features]"),
        "{errs:?}"
    );
    assert_eq!(
        errors(
            quote! { struct Seq { input: [20, 8], r: Residual { a: Conv1d(16, 3, stride = 2, padding = same) } } }
        ),
        [
            "`r: Residual`: its branch produces [10, 16] but its input is [20, 8], which the shortcut carries unchanged: add `shortcut: Conv1d(16, 1, stride = 2)` to project it"
        ]
    );
}

#[test]
fn rank_two_inputs_reach_the_shape_rules() {
    let model = check_tokens(quote! {
        struct Seq { input: [16, 8], act: Tanh, flat: Flatten, out: Dense(4) }
    })
    .unwrap_or_else(|e| panic!("{e:?}"));
    let layers = layers(&model);
    assert_eq!(layers[1].output, Shape::new(&[128]));
    assert_eq!(layers[2].parameters, 128 * 4 + 4);
    let errs = errors(quote! { struct Seq { input: [16, 8], c: Conv2d(4, 3) } });
    assert!(
        errs[0].starts_with("`c: Conv2d(4, 3)` expects a rank-3 input"),
        "{errs:?}"
    );
}

/// The block at the top level named `name`.
fn block<'m>(model: &'m Model, name: &str) -> &'m Block {
    model
        .nodes
        .iter()
        .find_map(|n| match n {
            Node::Block(b) if b.name == name => Some(b),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no block {name}"))
}

#[test]
fn blocks_check_and_qualify_their_names() {
    let model = check_tokens(quote! {
        struct M {
            input: [8, 8, 4],
            res: Residual(activation = relu) {
                shortcut: Conv2d(6, 1, stride = 2),
                a: Conv2d(6, 3, stride = 2, padding = same),
                inner: Sequential { b: Conv2d(6, 1), c: Relu },
            },
            mix: Concat { x: Conv2d(2, 1), y: Identity },
            flat: Flatten,
            out: Dense(3),
        }
    })
    .unwrap_or_else(|e| panic!("{e:?}"));
    let res = block(&model, "res");
    assert_eq!(res.output, Shape::new(&[4, 4, 6]));
    assert_eq!(res.activation, kiln_shape::Activation::Relu);
    assert!(res.shortcut_first);
    let paths: Vec<&str> = res.children().iter().map(|n| n.path()).collect();
    assert_eq!(paths, ["res.shortcut", "res.a", "res.inner"]);
    assert_eq!(res.parameters, (4 * 6 + 6) + (9 * 4 * 6 + 6) + (6 * 6 + 6));
    let Node::Block(inner) = &res.body[1] else {
        panic!("not a block")
    };
    let Node::Layer(c) = &inner.body[1] else {
        panic!("not a layer")
    };
    assert_eq!(c.path, "res.inner.c");
    assert_eq!(
        c.access.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["res", "inner", "c"]
    );
    assert_eq!(block(&model, "mix").output, Shape::new(&[4, 4, 8]));
}

#[test]
fn block_errors_name_the_block_and_the_numbers() {
    assert_eq!(
        errors(quote! {
            struct M { input: [8, 8, 4], r: Residual { a: Conv2d(8, 3, padding = same) } }
        }),
        [
            "`r: Residual`: its branch produces [8, 8, 8] but its input is [8, 8, 4], which the shortcut carries unchanged: add `shortcut: Conv2d(8, 1)` to project it"
        ]
    );
    assert_eq!(
        errors(quote! {
            struct M { input: [7, 7, 4], r: Residual { a: Conv2d(4, 3) } }
        }),
        [
            "`r: Residual`: its branch produces [5, 5, 4] but its input is [7, 7, 4], which the shortcut carries unchanged: add a `shortcut:` that maps the input to the branch's shape"
        ]
    );
    let vectors = check_tokens(quote! {
        struct M { input: [6], c: Concat { a: Dense(2), b: Flatten, d: Identity } }
    })
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(block(&vectors, "c").output, Shape::new(&[14]));
    assert_eq!(
        errors(quote! {
            struct M { input: [4, 4, 2], c: Concat { a: Flatten, b: Identity } }
        }),
        [
            "`c: Concat`: its branches must agree on their rank, but `c.a` produces [32] and `c.b` produces [4, 4, 2]"
        ]
    );
}

#[test]
fn errors_inside_a_block_keep_their_place() {
    assert_eq!(
        errors(quote! {
            struct M {
                input: [4],
                r: Residual { a: Dense(4), b: Conv2d(2, 3) },
            }
        }),
        [
            "`r.b: Conv2d(2, 3)` expects a rank-3 input [height, width, channels] (Conv2d works on images) but `r.a` produces [4]: images must keep their rank-3 shape up to `Flatten`"
        ]
    );
    assert_eq!(
        errors(quote! {
            struct M {
                input: [4, 4, 2],
                r: Residual { a: Dense(4) },
            }
        }),
        [
            "`r.a: Dense(4)` expects a rank-1 input but the input of `r` is [4, 4, 2]: insert `Flatten` (or `GlobalAvgPool2d`) before it"
        ]
    );
}

#[test]
fn batch_norm_takes_flags_and_a_convention() {
    let model = check_tokens(quote! {
        struct M {
            input: [4, 4, 8],
            bn: BatchNorm(relu, convention = pytorch, scale = false),
            flat: Flatten,
            out: Dense(2),
        }
    })
    .unwrap_or_else(|e| panic!("{e:?}"));
    let layers = layers(&model);
    assert_eq!(layers[0].parameters, 8);
    assert_eq!(layers[0].state, 16);
    assert!(
        layers[0]
            .spec
            .rust()
            .contains("unbiased: true, center: true, scale: false")
    );
    assert_eq!(
        errors(quote! {
            struct M { input: [4], bn: BatchNorm(convention = tensorflow, center = 1, momentum = 1.5) }
        }),
        [
            "unknown convention `tensorflow`; the convention names are `keras` and `pytorch`",
            "`center` takes `true` or `false`, got `1`",
        ]
    );
    assert_eq!(
        errors(quote! { struct M { input: [4], bn: BatchNorm(momentum = 1.5) } }),
        [
            "`bn: BatchNorm(momentum = 1.5)`: `momentum` must be in [0, 1) (the weight kept of the running averages), got 1.5"
        ]
    );
}

#[test]
fn sizes_beyond_what_kernels_index_are_errors_on_the_layer() {
    // The parameter count of the report that found `PARAMETERS` wrapping to
    // usize::MAX: 3e10 inputs times 4e9 units.
    let errs = errors(quote! {
        struct Net { input: [100000, 100000, 3], flat: Flatten, out: Dense(4000000000) }
    });
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("[100000, 100000, 3]") && errs[0].contains("32 bits"),
        "{errs:?}"
    );

    // Parameters that overflow `usize`: 2^32 - 1 inputs times 2^32 + 1 units.
    let errs = errors(quote! {
        struct Net { input: [4294967295], out: Dense(4294967297) }
    });
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("`out: Dense(4294967297)`"), "{errs:?}");
    assert!(errs[0].contains("more parameters than `usize`"), "{errs:?}");

    // An activation that overflows `usize`, then one above 32 bits.
    let errs = errors(quote! {
        struct Net { input: [4, 4, 1], conv: Conv2d(4611686018427387904, 1) }
    });
    assert!(
        errs[0].contains("`conv: Conv2d(4611686018427387904, 1)`"),
        "{errs:?}"
    );
    let errs = errors(quote! {
        struct Net { input: [1000, 1000, 3], conv: Conv2d(5000, 1) }
    });
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("produces [1000, 1000, 5000], 5000000000 values a sample")
            && errs[0].contains("32 bits"),
        "{errs:?}"
    );

    // Parameters above 32 bits in one layer: 70000 x 70000 weights.
    let errs = errors(quote! {
        struct Net { input: [70000], hidden: Dense(70000), out: Dense(10) }
    });
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("`hidden: Dense(70000)` on an input of [70000] has 4900070000 parameters"),
        "{errs:?}"
    );
}

#[test]
fn sizes_at_the_limit_check() {
    // 65535 x 65535 weights and a bias: 4294901760 parameters, under 2^32.
    let model = check_tokens(quote! {
        struct Net { input: [65535], hidden: Dense(65535) }
    })
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(layers(&model)[0].parameters, 65535 * 65535 + 65535);
}

/// A small deterministic generator for the property tests (xorshift64*).
struct Gen(u64);

impl Gen {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// One generated layer: its declaration, and its output shape and parameters on a
/// given input as computed here, from Keras's rules, apart from kiln-shape.
struct Generated {
    source: String,
    /// `None` when the layer cannot take its input.
    expect: Option<(Vec<usize>, usize)>,
}

/// Keras's output length of a window: `valid` drops the partial windows, `same` pads.
fn window(input: usize, size: usize, stride: usize, same: bool) -> Option<usize> {
    if same {
        Some(input.div_ceil(stride))
    } else if size <= input {
        Some((input - size) / stride + 1)
    } else {
        None
    }
}

fn generate_layer(g: &mut Gen, input: &[usize]) -> Generated {
    let image = |f: &dyn Fn(usize, usize) -> Option<(usize, usize)>| match input {
        [h, w, _] => f(*h, *w),
        _ => None,
    };
    match g.below(5) {
        0 => {
            let (filters, kernel, stride) = (1 + g.below(6), 1 + g.below(5), 1 + g.below(3));
            let same = g.below(2) == 0;
            let padding = if same { "same" } else { "valid" };
            let out = image(&|h, w| {
                Some((
                    window(h, kernel, stride, same)?,
                    window(w, kernel, stride, same)?,
                ))
            });
            let channels = input.last().copied().unwrap_or(0);
            Generated {
                source: format!(
                    "Conv2d(filters = {filters}, kernel = {kernel}, stride = {stride}, padding = {padding})"
                ),
                expect: out.map(|(h, w)| {
                    (
                        vec![h, w, filters],
                        kernel * kernel * channels * filters + filters,
                    )
                }),
            }
        }
        1 | 2 => {
            let kind = if g.below(2) == 0 {
                "MaxPool2d"
            } else {
                "AvgPool2d"
            };
            let (size, stride) = (1 + g.below(4), 1 + g.below(3));
            let same = g.below(3) == 0;
            let padding = if same { "same" } else { "valid" };
            let out = image(&|h, w| {
                Some((
                    window(h, size, stride, same)?,
                    window(w, size, stride, same)?,
                ))
            });
            Generated {
                source: format!("{kind}(size = {size}, stride = {stride}, padding = {padding})"),
                expect: out.map(|(h, w)| (vec![h, w, input[2]], 0)),
            }
        }
        3 => Generated {
            source: "Flatten".to_string(),
            // As Keras's: a vector passes unchanged.
            expect: Some((vec![input.iter().product()], 0)),
        },
        _ => {
            let units = 1 + g.below(20);
            Generated {
                source: format!("Dense({units})"),
                expect: (input.len() == 1).then(|| (vec![units], input[0] * units + units)),
            }
        }
    }
}

#[test]
fn the_shape_arithmetic_matches_an_independent_calculation() {
    let mut g = Gen(0x6b69_6c6e);
    let (mut checked, mut refused) = (0, 0);
    for case in 0..3000 {
        let input = vec![1 + g.below(24), 1 + g.below(24), 1 + g.below(4)];
        let mut shape = Some(input.clone());
        let mut expected = Vec::new();
        let mut fields = Vec::new();
        for i in 0..1 + g.below(6) {
            let layer = shape.as_deref().map(|s| generate_layer(&mut g, s));
            let Some(layer) = layer else { break };
            fields.push(format!("l{i}: {},", layer.source));
            shape = layer.expect.as_ref().map(|(s, _)| s.clone());
            expected.push(layer.expect);
            if shape.is_none() {
                break;
            }
        }
        let text = format!(
            "struct Net {{ input: [{}, {}, {}], {} }}",
            input[0],
            input[1],
            input[2],
            fields.join(" ")
        );
        let tokens: TokenStream = text.parse().unwrap();
        let result = check_tokens(tokens);
        let first_bad = expected.iter().position(Option::is_none);
        match (result, first_bad) {
            (Ok(model), None) => {
                let layers = layers(&model);
                assert_eq!(layers.len(), expected.len(), "{text}");
                for (layer, want) in layers.iter().zip(&expected) {
                    let (dims, parameters) = want.as_ref().unwrap();
                    assert_eq!(layer.output.dims(), dims.as_slice(), "case {case}: {text}");
                    assert_eq!(layer.parameters, *parameters, "case {case}: {text}");
                }
                checked += 1;
            }
            (Err(errors), Some(bad)) => {
                assert!(
                    errors.iter().any(|e| e.contains(&format!("l{bad}"))),
                    "case {case}: {text}: {errors:?}"
                );
                refused += 1;
            }
            (Ok(_), Some(bad)) => panic!("case {case}: {text}: l{bad} was expected to fail"),
            (Err(errors), None) => panic!("case {case}: {text}: {errors:?}"),
        }
    }
    // Both sides of the property are exercised.
    assert!(
        checked > 500 && refused > 500,
        "{checked} checked, {refused} refused"
    );
}

/// Random token trees from `model!`'s words and others: balanced, so that they lex.
fn random_tokens(g: &mut Gen, depth: usize, out: &mut String) {
    const WORDS: &[&str] = &[
        "struct",
        "pub",
        "Net",
        "input",
        "Dense",
        "Conv2d",
        "MaxPool2d",
        "Flatten",
        "relu",
        "softmax",
        "same",
        "valid",
        "filters",
        "kernel",
        "stride",
        "units",
        "Residual",
        "Concat",
        "shortcut",
        "BatchNorm",
        "Dropout",
        "r#struct",
        "_",
        "self",
        "0",
        "1",
        "3",
        "4294967297",
        "99999999999999999999999",
        "1.5",
        "1e300",
        "-1",
        "\"text\"",
        "'c'",
        "b'x'",
        ":",
        "::",
        ",",
        "=",
        ";",
        ".",
        "#",
        "!",
        "-",
        "/",
        "*",
        "&",
        "<",
        ">",
        "|",
        "///",
        "'a",
    ];
    for _ in 0..g.below(8) {
        match g.below(10) {
            0 if depth < 4 => {
                let (open, close) = [("(", ")"), ("[", "]"), ("{", "}")][g.below(3)];
                out.push_str(open);
                random_tokens(g, depth + 1, out);
                out.push_str(close);
            }
            _ => out.push_str(g.pick(WORDS)),
        }
        out.push(' ');
    }
}

#[test]
fn random_token_streams_give_errors_never_a_panic() {
    let mut g = Gen(0x746f_6b65);
    let valid = "pub struct Net { input: [8, 8, 2], c: Conv2d(4, 3, relu), p: MaxPool2d(2), \
                 f: Flatten, r: Residual { d: Dense(36) }, o: Dense(3, softmax), }";
    for case in 0..20_000 {
        let text = if case % 2 == 0 {
            let mut text = String::new();
            random_tokens(&mut g, 0, &mut text);
            text
        } else {
            // A valid model with one span of its text replaced by random tokens.
            let cut = g.below(valid.len());
            let end = (cut + g.below(20)).min(valid.len());
            let mut noise = String::new();
            random_tokens(&mut g, 3, &mut noise);
            format!("{}{noise}{}", &valid[..cut], &valid[end..])
        };
        let Ok(tokens) = text.parse::<TokenStream>() else {
            continue;
        };
        let outcome = std::panic::catch_unwind(|| match parse(tokens) {
            Err(err) => err.into_compile_error(),
            Ok(def) => match check(def) {
                Ok(model) => crate::expand::expand(&model),
                Err((header, err)) => crate::expand::stub(&header, err),
            },
        });
        assert!(
            outcome.is_ok(),
            "case {case}: the macro panicked on `{text}`"
        );
    }
}
