//! Tests of the generated tokens: the struct, its impls and straight-line bodies.

use super::*;
use crate::check::check;
use crate::parse::parse;
use quote::ToTokens;

fn expanded(tokens: TokenStream) -> syn::File {
    let model = check(parse(tokens).unwrap()).unwrap_or_else(|(_, e)| panic!("{e}"));
    syn::parse2(expand(&model)).unwrap()
}

/// The tokens of the body of the inherent method `name`, space-separated.
fn method(file: &syn::File, name: &str) -> String {
    file.items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Impl(i) if i.trait_.is_none() => Some(i),
            _ => None,
        })
        .flat_map(|i| &i.items)
        .find_map(|item| match item {
            syn::ImplItem::Fn(f) if f.sig.ident == name => {
                Some(f.block.to_token_stream().to_string())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no method {name}"))
}

fn seed() -> syn::File {
    expanded(quote! {
        pub struct SeedCnn {
            input: [32, 32, 3],
            conv1: Conv2d(32, 3, relu),
            pool1: MaxPool2d(2),
            flat: Flatten,
            fc1: Dense(128, relu),
            drop: Dropout(0.5),
            out: Dense(10, softmax),
        }
    })
}

#[test]
fn struct_and_three_impls() {
    let file = seed();
    // The struct, its inherent impl, `Trainable` and `Model`.
    assert_eq!(file.items.len(), 4);
    let syn::Item::Struct(s) = &file.items[0] else {
        panic!("no struct first")
    };
    let fields: Vec<String> = s
        .fields
        .iter()
        .filter_map(|f| f.ident.as_ref().map(ToString::to_string))
        .collect();
    assert_eq!(
        &fields[..6],
        ["conv1", "pool1", "flat", "fc1", "drop", "out"]
    );
    assert!(
        fields[6..].iter().all(|f| f.starts_with("__")),
        "{fields:?}"
    );
}

#[test]
fn forward_and_backward_are_straight_line() {
    let file = seed();
    for name in ["__forward", "backward", "backward_to_input", "zero_grad"] {
        let body = method(&file, name);
        for keyword in ["for", "while", "loop", "vec", "Vec", "Box"] {
            assert!(
                !body.split_whitespace().any(|t| t == keyword),
                "`{keyword}` in {name}"
            );
        }
    }
    let forward = method(&file, "__forward");
    // `Flatten` never runs; every other layer does, once.
    assert!(!forward.contains("self . flat"));
    for layer in ["conv1", "pool1", "fc1", "drop", "out"] {
        assert_eq!(
            forward.matches(&format!("& mut self . {layer} ,")).count(),
            1,
            "{layer}"
        );
    }
}

#[test]
fn backward_runs_in_reverse_and_passes_at_to_the_last_layer_only() {
    let backward = method(&seed(), "backward");
    let order: Vec<usize> = [
        "self . out",
        "self . drop",
        "self . fc1",
        "self . pool1",
        "self . conv1",
    ]
    .iter()
    .map(|l| backward.find(&format!("& mut {l} ,")).unwrap())
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    assert_eq!(backward.matches("at : at").count(), 1);
    // The pool takes the ReLU's backward pass over, and `conv1` is told its
    // gradient is at the pre-activation; `conv1` computes no input gradient.
    assert_eq!(backward.matches("through_relu_below : true").count(), 1);
    let conv1 = &backward[order[4]..];
    assert!(conv1.contains("GradAt :: PreActivation"));
    assert!(conv1.contains("dx : :: core :: option :: Option :: None"));
}

#[test]
fn blocks_get_structs_of_their_own() {
    let file = expanded(quote! {
        struct M {
            input: [8, 8, 4],
            res: Residual(activation = relu) {
                a: Conv2d(4, 3, padding = same),
                shortcut: Sequential { p: Conv2d(4, 1) },
            },
            flat: Flatten,
            out: Dense(2),
        }
    });
    let syn::Item::Mod(module) = &file.items[0] else {
        panic!("no module of blocks first")
    };
    assert_eq!(module.ident, "__kiln_M");
    let items = &module.content.as_ref().unwrap().1;
    let names: Vec<String> = items
        .iter()
        .filter_map(|i| match i {
            syn::Item::Struct(s) => Some(s.ident.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["Block_res", "Block_res__shortcut"]);
    let forward = method(&file, "__forward");
    assert!(
        forward.contains("& mut self . res . shortcut . p ,"),
        "{forward}"
    );
    assert!(forward.contains("graph :: add"), "{forward}");
}
