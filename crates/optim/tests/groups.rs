//! Parameter groups: which tensors each group takes, that a group's tensors move as
//! an optimizer with the group's settings would move them alone, errors for groups
//! that take nothing or have bad settings, and saved states that record the groups.
//! (Trajectories against PyTorch's `param_groups` are in `pytorch.rs`.)

#![allow(clippy::unwrap_used)]

mod common;

use common::Tensors;
use kiln_kernels::Cpu;
use kiln_optim::{Adam, AdamW, Algorithm, Lion, Optimizer, ParamGroup, Sgd};

/// A convolution, a batch normalisation and a dense layer.
const LAYERS: [(&str, &str, &str, &[usize]); 6] = [
    ("conv1", "Conv2d", "weight", &[3, 3, 2, 4]),
    ("conv1", "Conv2d", "bias", &[4]),
    ("bn1", "BatchNorm", "weight", &[4]),
    ("bn1", "BatchNorm", "bias", &[4]),
    ("out", "Dense", "weight", &[16, 3]),
    ("out", "Dense", "bias", &[3]),
];

fn model(cpu: &Cpu, layers: &[(&'static str, &'static str, &'static str, &[usize])]) -> Tensors {
    Tensors::with_kinds(cpu, layers)
}

fn grads(tensors: &Tensors, t: usize) -> Vec<Vec<f32>> {
    tensors
        .entries
        .iter()
        .enumerate()
        .map(|(k, e)| {
            (0..e.3.size())
                .map(|i| ((0.37 * i as f64 + 0.11 * t as f64 + k as f64).sin() * 1.5) as f32)
                .collect()
        })
        .collect()
}

/// No decay on batch norm and biases; the classifier's weight at half the rate.
fn recipe(algorithm: impl Into<Algorithm>) -> Optimizer<Cpu> {
    Optimizer::new(algorithm)
        .weight_decay(1e-2)
        .group(
            ParamGroup::new()
                .kinds(["BatchNorm"])
                .names(["*.bias"])
                .weight_decay(0.0),
        )
        .group(ParamGroup::new().names(["out.*"]).learning_rate_scale(0.5))
}

#[test]
fn each_tensor_belongs_to_the_first_group_that_takes_it() {
    let cpu = Cpu::with_threads(1).unwrap();
    let tensors = model(&cpu, &LAYERS);
    let assignment = recipe(Sgd::default()).assignment(&tensors).unwrap();
    let want = [
        ("conv1.weight", None),
        ("conv1.bias", Some(0)),
        ("bn1.weight", Some(0)),
        ("bn1.bias", Some(0)),
        ("out.weight", Some(1)),
        ("out.bias", Some(0)),
    ];
    let got: Vec<(&str, Option<usize>)> =
        assignment.iter().map(|(k, g)| (k.as_str(), *g)).collect();
    assert_eq!(got, want);
}

/// Twelve steps of `grouped` on every tensor give, bit for bit, what optimizers with
/// each group's settings give on the group's tensors alone.
fn check_groups_move_as_alone(grouped: Optimizer<Cpu>, alone: [Optimizer<Cpu>; 3]) {
    let cpu = Cpu::with_threads(1).unwrap();
    let mut all = model(&cpu, &LAYERS);
    let parts: [Vec<usize>; 3] = [vec![0], vec![1, 2, 3, 5], vec![4]];
    let mut separate: Vec<Tensors> = parts
        .iter()
        .map(|part| {
            let layers: Vec<_> = part.iter().map(|&i| LAYERS[i]).collect();
            let mut t = model(&cpu, &layers);
            // The same starting values as in `all`.
            let values = all.values();
            for (entry, &i) in t.entries.iter_mut().zip(part) {
                cpu_upload(&cpu, &values[i], &mut entry.4);
            }
            t
        })
        .collect();
    let mut grouped = grouped;
    let mut alone = alone;
    for t in 0..12 {
        let g = grads(&all, t);
        all.set_grads(&g);
        grouped.step(&mut all).unwrap();
        for ((tensors, part), opt) in separate.iter_mut().zip(&parts).zip(&mut alone) {
            let g: Vec<Vec<f32>> = part.iter().map(|&i| g[i].clone()).collect();
            tensors.set_grads(&g);
            opt.step(tensors).unwrap();
        }
    }
    let values = all.values();
    for (tensors, part) in separate.iter().zip(&parts) {
        for (got, &i) in tensors.values().iter().zip(part) {
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(got), bits(&values[i]), "{}", LAYERS[i].0);
        }
    }
}

fn cpu_upload(cpu: &Cpu, values: &[f32], buffer: &mut kiln_kernels::CpuBuffer) {
    use kiln_kernels::Storage;
    cpu.upload(values, buffer).unwrap();
}

#[test]
fn coupled_decay_and_rates_are_the_groups() {
    let sgd = Sgd {
        learning_rate: 0.1,
        momentum: 0.9,
        nesterov: true,
    };
    let half = Sgd {
        learning_rate: 0.05,
        ..sgd
    };
    check_groups_move_as_alone(
        recipe(sgd),
        [
            Optimizer::new(sgd).weight_decay(1e-2),
            Optimizer::new(sgd),
            Optimizer::new(half).weight_decay(1e-2),
        ],
    );
}

#[test]
fn decoupled_decay_is_the_groups_for_adamw_and_lion() {
    let adamw = AdamW {
        weight_decay: 0.1,
        ..AdamW::pytorch()
    };
    let no_decay = AdamW {
        weight_decay: 0.0,
        ..adamw
    };
    let half = AdamW {
        adam: Adam {
            learning_rate: adamw.adam.learning_rate / 2.0,
            ..adamw.adam
        },
        ..adamw
    };
    // The optimizer's coupled decay goes to the tensors outside groups and to the
    // group that sets none; a group that sets a decay gets that alone.
    check_groups_move_as_alone(
        recipe(adamw),
        [
            Optimizer::new(adamw).weight_decay(1e-2),
            Optimizer::new(no_decay),
            Optimizer::new(half).weight_decay(1e-2),
        ],
    );
    let lion = Lion {
        weight_decay: 0.5,
        ..Lion::default()
    };
    check_groups_move_as_alone(
        Optimizer::new(lion)
            .group(
                ParamGroup::new()
                    .names(["*.bias", "bn1.*"])
                    .weight_decay(0.1),
            )
            .group(ParamGroup::new().kinds(["Dense"]).learning_rate_scale(0.5)),
        [
            Optimizer::new(lion),
            Optimizer::new(Lion {
                weight_decay: 0.1,
                ..lion
            }),
            Optimizer::new(Lion {
                learning_rate: lion.learning_rate / 2.0,
                ..lion
            }),
        ],
    );
}

#[test]
fn a_group_that_takes_no_tensor_is_an_error_that_lists_the_kinds() {
    let cpu = Cpu::with_threads(1).unwrap();
    let mut tensors = model(&cpu, &LAYERS);
    let start = tensors.values();
    tensors.set_grads(&grads(&tensors, 0));
    let mut misspelt = Optimizer::new(Sgd::default())
        .group(ParamGroup::new().kinds(["Batchnorm"]).weight_decay(0.0));
    let err = misspelt.step(&mut tensors).unwrap_err().to_string();
    assert!(
        err.contains("kinds [Batchnorm]") && err.contains("Conv2d, BatchNorm, Dense"),
        "{err}"
    );
    // Taken by an earlier group, a later one is empty too.
    let mut shadowed = Optimizer::new(Sgd::default())
        .group(ParamGroup::new().names(["*"]))
        .group(ParamGroup::new().names(["*.bias"]));
    let err = shadowed.step(&mut tensors).unwrap_err().to_string();
    assert!(
        err.contains("(group 1)") && err.contains("earlier groups"),
        "{err}"
    );
    assert_eq!(tensors.values(), start, "parameters changed");
}

#[test]
fn bad_group_settings_are_refused_before_any_update() {
    let cpu = Cpu::with_threads(1).unwrap();
    let bad = [
        (ParamGroup::new(), "selects no tensor"),
        (
            ParamGroup::new().kinds(["Dense"]).weight_decay(-1.0),
            "weight decay",
        ),
        (
            ParamGroup::new()
                .names(["*.bias"])
                .learning_rate_scale(f64::INFINITY),
            "learning-rate scale",
        ),
    ];
    for (group, needle) in bad {
        let mut tensors = model(&cpu, &LAYERS);
        let start = tensors.values();
        tensors.set_grads(&grads(&tensors, 0));
        let err = Optimizer::new(Sgd::default())
            .group(group)
            .step(&mut tensors)
            .unwrap_err();
        assert!(err.to_string().contains(needle), "{needle}: {err}");
        assert_eq!(tensors.values(), start, "{needle}: parameters changed");
    }
}

#[test]
fn a_group_added_after_a_step_applies_from_the_next() {
    let cpu = Cpu::with_threads(1).unwrap();
    let mut tensors = model(&cpu, &LAYERS);
    let sgd = Sgd {
        learning_rate: 0.1,
        ..Sgd::default()
    };
    let mut opt = Optimizer::new(sgd).weight_decay(0.5);
    tensors.set_grads(&grads(&tensors, 0));
    opt.step(&mut tensors).unwrap();
    let after_one = tensors.values();
    let mut opt = opt.group(ParamGroup::new().names(["*.bias"]).weight_decay(0.0));
    tensors.set_grads(&grads(&tensors, 1));
    opt.step(&mut tensors).unwrap();
    // conv1.bias took its second step without decay, conv1.weight with it.
    let alone = |layer: (&'static str, &'static str, &'static str, &'static [usize]),
                 index: usize,
                 decay: f64| {
        let mut t = model(&cpu, &[layer]);
        cpu_upload(&cpu, &after_one[index], &mut t.entries[0].4);
        t.set_grads(&[grads(&tensors, 1)[index].clone()]);
        Optimizer::new(sgd)
            .weight_decay(decay)
            .step(&mut t)
            .unwrap();
        t.values().remove(0)
    };
    assert_eq!(tensors.values()[1], alone(LAYERS[1], 1, 0.0));
    assert_eq!(tensors.values()[0], alone(LAYERS[0], 0, 0.5));
    assert_eq!(opt.state(&cpu).unwrap().groups.len(), 1);
}

#[test]
fn a_state_with_groups_restores_and_continues_bit_for_bit() {
    let cpu = Cpu::with_threads(1).unwrap();
    let mut a = model(&cpu, &LAYERS);
    let mut opt = recipe(AdamW::pytorch()).clip_global_norm(2.0);
    for t in 0..5 {
        a.set_grads(&grads(&a, t));
        opt.step(&mut a).unwrap();
    }
    let saved = opt.state(&cpu).unwrap();
    assert_eq!(
        saved.groups,
        [
            "group(kinds [BatchNorm], names [*.bias], weight_decay 0, learning_rate_scale 1)",
            "group(kinds [], names [out.*], weight_decay default, learning_rate_scale 0.5)",
        ]
    );
    let mut b = model(&cpu, &LAYERS);
    for (entry, values) in b.entries.iter_mut().zip(a.values()) {
        cpu_upload(&cpu, &values, &mut entry.4);
    }
    let mut resumed = recipe(AdamW::pytorch()).clip_global_norm(2.0);
    resumed.load_state(&b, &saved).unwrap();
    for t in 5..10 {
        a.set_grads(&grads(&a, t));
        opt.step(&mut a).unwrap();
        b.set_grads(&grads(&b, t));
        resumed.step(&mut b).unwrap();
    }
    assert_eq!(a.values(), b.values());
}

#[test]
fn a_state_made_with_other_groups_is_refused_and_changes_nothing() {
    let cpu = Cpu::with_threads(1).unwrap();
    let mut tensors = model(&cpu, &LAYERS);
    let mut grouped = recipe(Adam::default());
    tensors.set_grads(&grads(&tensors, 0));
    grouped.step(&mut tensors).unwrap();
    let with_groups = grouped.state(&cpu).unwrap();

    let mut plain = Optimizer::new(Adam::default());
    plain.step(&mut tensors).unwrap();
    let before = plain.state(&cpu).unwrap();
    let err = plain
        .load_state(&tensors, &with_groups)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("made with group(kinds [BatchNorm]") && err.contains("has no groups"),
        "{err}"
    );
    assert_eq!(plain.state(&cpu).unwrap(), before, "the optimizer changed");

    let err = grouped
        .load_state(&tensors, &before)
        .unwrap_err()
        .to_string();
    assert!(err.contains("made with no groups"), "{err}");

    // Same selectors, another setting.
    let other = Optimizer::new(Adam::default())
        .weight_decay(1e-2)
        .group(
            ParamGroup::new()
                .kinds(["BatchNorm"])
                .names(["*.bias"])
                .weight_decay(1e-4),
        )
        .group(ParamGroup::new().names(["out.*"]).learning_rate_scale(0.5))
        .load_state(&tensors, &with_groups)
        .unwrap_err()
        .to_string();
    assert!(other.contains("weight_decay 0.0001"), "{other}");
}
