//! Hyper-parameter search: TPE against random search on an objective with a known
//! optimum, resuming a study after its process died mid-trial, worker processes
//! sharing a study folder (both run this test binary again as a child), pruning
//! through `fit`, and bad input recorded as failed trials rather than ending the study.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use kiln::prelude::*;
use kiln::train::tune::study::{
    Direction, Grid, Hyperband, MedianPruner, Random, Scale, Study, Tpe, Trial, TrialState,
    Workers, worker_index,
};

/// A fresh folder under the target directory.
fn folder(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("study-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Three parameters with a known optimum of 0: a learning rate on a log scale (best
/// at 10^-2.5), a dropout rate (best at 0.3) and a width among four (best 64).
fn synthetic(trial: &mut Trial) -> kiln::train::Result<f64> {
    let lr = trial.suggest_float("lr", 1e-5, 1.0, Scale::Log)?;
    let dropout = trial.suggest_float("dropout", 0.0, 0.8, Scale::Linear)?;
    let width = trial.suggest_categorical("width", &[16, 32, 64, 128])?;
    let w = (f64::from(width).log2() - 6.0).abs();
    Ok((lr.log10() + 2.5).powi(2) + 10.0 * (dropout - 0.3).powi(2) + 0.5 * w)
}

fn best_of(study: Study, trials: usize) -> f64 {
    let mut study = study;
    study.optimize(trials, synthetic).unwrap();
    study.best_trial().and_then(|t| t.value).unwrap()
}

#[test]
fn tpe_beats_random_search_over_many_seeds() {
    // 40 paired studies of 30 trials (10 random start-up trials, then 20 of TPE).
    // Under the null hypothesis that TPE is no better, each seed is a coin toss: 28
    // wins or more of 40 happen with probability 0.008 (binomial tail).
    let (seeds, trials) = (40u64, 30);
    let (mut wins, mut tpe_sum, mut random_sum) = (0, 0.0, 0.0);
    for seed in 0..seeds {
        let tpe = best_of(
            Study::new("tpe", Direction::Minimize)
                .sampler(Tpe::new())
                .seed(seed),
            trials,
        );
        let random = best_of(
            Study::new("random", Direction::Minimize)
                .sampler(Random)
                .seed(seed + 1000),
            trials,
        );
        wins += usize::from(tpe < random);
        tpe_sum += tpe;
        random_sum += random;
    }
    println!(
        "TPE won {wins} of {seeds}; mean best {:.4} (TPE) against {:.4} (random)",
        tpe_sum / seeds as f64,
        random_sum / seeds as f64
    );
    assert!(wins >= 28, "TPE won only {wins} of {seeds} seeds");
    assert!(tpe_sum < random_sum);
}

#[test]
fn a_grid_walks_its_combinations_and_stops() {
    let mut study = Study::new("grid", Direction::Minimize).sampler(Grid::new(3).size(6));
    let mut seen = Vec::new();
    study
        .optimize(100, |trial| {
            let lr = trial.suggest_float("lr", 1e-4, 1e-2, Scale::Log)?;
            let act = trial.suggest_categorical("activation", &["relu", "gelu"])?;
            seen.push(format!("{lr:.0e} {act}"));
            Ok(lr)
        })
        .unwrap();
    assert_eq!(study.trials().len(), 6);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 6, "{seen:?}");
}

/// Counts the objective's calls and the trial numbers it ran.
fn counting(
    calls: &AtomicUsize,
    ran: &std::sync::Mutex<Vec<usize>>,
) -> impl FnMut(&mut Trial) -> kiln::train::Result<f64> {
    move |trial| {
        calls.fetch_add(1, Ordering::SeqCst);
        ran.lock().unwrap().push(trial.number());
        synthetic(trial)
    }
}

/// Runs this test binary again, running only `test`, with the environment `vars`.
fn rerun(test: &str, vars: &[(&str, &str)]) -> std::process::Output {
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command.args([test, "--exact", "--test-threads=1", "--nocapture"]);
    for (k, v) in vars {
        command.env(k, v);
    }
    command.output().unwrap()
}

const CRASH_VAR: &str = "KILN_TEST_STUDY_CRASH";

#[test]
fn an_interrupted_study_resumes_without_repeating_finished_trials() {
    let study = || {
        Study::new("resume", Direction::Minimize)
            .sampler(Tpe::new().startup_trials(3))
            .seed(7)
    };
    if let Ok(dir) = std::env::var(CRASH_VAR) {
        // The child: three trials finish, then the process dies in the fourth, after
        // drawing its parameters and before returning (no unwinding, no clean-up).
        study()
            .storage(&dir)
            .unwrap()
            .optimize(10, |trial| {
                let value = synthetic(trial)?;
                if trial.number() == 3 {
                    std::process::exit(9);
                }
                Ok(value)
            })
            .unwrap();
        unreachable!("the child exits in trial 3");
    }
    let dir = folder("resume");
    let out = rerun(
        "an_interrupted_study_resumes_without_repeating_finished_trials",
        &[(CRASH_VAR, dir.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(9), "{out:?}");
    // What the crash left: trials 0-2 complete, trial 3 running in a process gone.
    let left = study().storage(&dir).unwrap();
    let trials = left.trials().to_vec();
    assert_eq!(trials.len(), 4, "{trials:?}");
    assert!(trials[..3].iter().all(|t| t.state == TrialState::Complete));
    assert_eq!(trials[3].state, TrialState::Running);
    assert_eq!(trials[3].params.len(), 3, "drawn before the crash");

    let (calls, ran) = (AtomicUsize::new(0), std::sync::Mutex::new(Vec::new()));
    let mut resumed = study().storage(&dir).unwrap();
    resumed.optimize(6, counting(&calls, &ran)).unwrap();
    // Trials 0-2 are not run again; the interrupted trial 3 is re-run (as trial 4,
    // with its parameters) and two new trials bring the study to 6 finished.
    assert_eq!(*ran.lock().unwrap(), [4, 5, 6]);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let after = resumed.trials();
    assert_eq!(after[3].state, TrialState::Interrupted);
    let why = after[3].error.clone().unwrap_or_default();
    assert!(why.contains("ended while it ran"), "{why}");
    assert_eq!(after[4].retry_of, Some(3));
    assert_eq!(after[4].params, trials[3].params);
    assert_eq!(after.iter().filter(|t| t.finished()).count(), 6);
    // The first three trials are those the crashed process finished, untouched.
    assert_eq!(&after[..3], &trials[..3]);
    let csv = std::fs::read_to_string(dir.join("trials.csv")).unwrap();
    assert!(
        csv.starts_with("number,state,value,seconds,lr,dropout,width,error\n"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 1 + 7);
    // The state is one JSON file, replaced whole: no temporary file is left beside it,
    // nor the lock.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["study.json", "trials.csv"]);
}

#[test]
fn worker_processes_share_the_trials_of_one_study() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("study-processes");
    let make = || {
        Study::new("processes", Direction::Minimize)
            .sampler(Random)
            .storage(&dir)
            .unwrap()
    };
    if let Some(index) = worker_index() {
        // A worker: runs trials until the study has 12, noting which it ran.
        let mut ran = Vec::new();
        make()
            .optimize(12, |t| {
                ran.push(t.number().to_string());
                std::thread::sleep(std::time::Duration::from_millis(30));
                synthetic(t)
            })
            .unwrap();
        std::fs::write(dir.join(format!("ran-{index}.txt")), ran.join(" ")).unwrap();
        return;
    }
    let dir = folder("processes");
    let test = "worker_processes_share_the_trials_of_one_study";
    let workers = Workers::spawn(3, [test, "--exact", "--quiet"], Some(1)).unwrap();
    assert_eq!(workers.ids().len(), 3);
    workers.wait().unwrap();
    let mut all = Vec::new();
    let mut busy = 0;
    for index in 0..3 {
        let text = std::fs::read_to_string(dir.join(format!("ran-{index}.txt"))).unwrap();
        let ran: Vec<usize> = text
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        busy += usize::from(!ran.is_empty());
        all.extend(ran);
    }
    all.sort_unstable();
    // Every trial ran once, in one of the processes, and more than one process ran.
    assert_eq!(all, (0..12).collect::<Vec<_>>());
    assert!(busy >= 2, "only {busy} worker ran trials");
    let mut study = make();
    study.reload().unwrap();
    assert_eq!(study.trials().iter().filter(|t| t.finished()).count(), 12);
    assert!(study.trials().iter().all(|t| t.owner.is_none()));
}

#[test]
fn bad_input_fails_its_trial_not_the_study() {
    let mut study = Study::new("bad", Direction::Maximize);
    study
        .optimize(5, |trial| match trial.number() {
            0 => trial.suggest_float("lr", 1.0, 0.1, Scale::Log),
            1 => Ok(f64::NAN),
            2 => panic!("out of memory, say"),
            3 => {
                trial.suggest_int("width", 8, 64, Scale::Linear)?;
                Ok(1.0)
            }
            _ => {
                // The same name with another range than trial 3's.
                trial.suggest_int("width", 8, 128, Scale::Linear)?;
                Ok(2.0)
            }
        })
        .unwrap();
    let t = study.trials();
    let errors: Vec<String> = t
        .iter()
        .map(|t| t.error.clone().unwrap_or_default())
        .collect();
    assert_eq!(t[0].state, TrialState::Failed);
    assert!(
        errors[0].contains("`lr`") && errors[0].contains("empty"),
        "{}",
        errors[0]
    );
    assert!(errors[1].contains("NaN"), "{}", errors[1]);
    assert!(
        errors[2].contains("panicked: out of memory"),
        "{}",
        errors[2]
    );
    assert_eq!(t[3].state, TrialState::Complete);
    assert!(errors[4].contains("keeps its range"), "{}", errors[4]);
    assert_eq!(study.best_trial().map(|b| b.number), Some(3));
}

#[test]
fn a_folder_of_another_study_is_refused() {
    let dir = folder("other");
    Study::new("first", Direction::Minimize)
        .storage(&dir)
        .unwrap();
    for other in [
        Study::new("second", Direction::Minimize),
        Study::new("first", Direction::Maximize),
        Study::new("first", Direction::Minimize).sampler(Tpe::new()),
    ] {
        let e = other
            .storage(&dir)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("holds study `first` (minimize, sampler random"),
            "{e}"
        );
    }
    std::fs::write(dir.join("study.json"), "{ not json").unwrap();
    let e = Study::new("first", Direction::Minimize)
        .storage(&dir)
        .err()
        .map(|e| e.to_string());
    assert!(e.is_some_and(|e| e.contains("is not a study's state")));
}

kiln::model! {
    /// A small classifier for the 28x28 digits.
    pub struct Digits {
        input: [28, 28, 1],
        conv: Conv2d(filters = 4, kernel = 3, stride = 2, activation = relu),
        pool: MaxPool2d(2),
        flat: Flatten,
        out: Dense(10, softmax),
    }
}

#[test]
fn pruning_stops_fit_through_its_callback() {
    let (train, _) = kiln::data::mnist::embedded().unwrap();
    let train = train.select(&(0..256).collect::<Vec<_>>()).unwrap();
    let mut study = Study::new("prune", Direction::Minimize)
        .sampler(Random)
        .pruner(MedianPruner::new().startup_trials(2));
    let mut epochs_run = Vec::new();
    study
        .optimize(8, |trial| {
            let lr = trial.suggest_float("lr", 1e-5, 3e-2, Scale::Log)?;
            let cpu = Cpu::with_threads(1)?;
            let mut trainer = Trainer::new(
                Digits::new(&cpu, 32, 1)?,
                Loss::sparse_categorical_crossentropy(),
                Optimizer::new(Adam::default()).learning_rate_fixed(lr),
            )?;
            let history = trainer.fit(
                train.clone(),
                FitOptions::new(4, 32)
                    .pipeline(Pipeline::new().scale(1.0 / 255.0))
                    .callback(trial.pruning("loss"))
                    .verbose(Verbosity::Silent),
            )?;
            epochs_run.push(history.epochs.len());
            Ok(history
                .epochs
                .last()
                .and_then(|e| e.get("loss"))
                .unwrap_or(f64::NAN))
        })
        .unwrap();
    let pruned: Vec<_> = study
        .trials()
        .iter()
        .filter(|t| t.state == TrialState::Pruned)
        .collect();
    assert!(!pruned.is_empty(), "{:?}", study.trials());
    for t in &pruned {
        // Stopped after the epoch it was judged at, with that epoch's value.
        assert!(t.intermediate.len() < 4, "{t:?}");
        assert_eq!(t.value, t.intermediate.last().map(|i| i.1));
    }
    assert!(epochs_run.iter().any(|&e| e < 4), "{epochs_run:?}");
}

#[test]
fn hyperband_prunes_by_hand_reported_values() {
    let mut study = Study::new("hyperband", Direction::Minimize)
        .sampler(Random)
        .pruner(Hyperband::new(1, 9, 3));
    study
        .optimize(30, |trial| {
            let x = trial.suggest_float("x", 0.0, 1.0, Scale::Linear)?;
            let mut value = f64::NAN;
            for step in 1..=9 {
                value = x + 1.0 / step as f64;
                trial.report(step, value);
                if trial.should_prune() {
                    break;
                }
            }
            Ok(value)
        })
        .unwrap();
    let pruned = study
        .trials()
        .iter()
        .filter(|t| t.state == TrialState::Pruned)
        .count();
    assert!(pruned >= 5, "{pruned} pruned");
    // The best trial was never pruned, and is near x = 0.
    let best = study.best_trial().unwrap();
    assert!(best.value.unwrap() < 1.0 / 9.0 + 0.2, "{best:?}");
}

#[cfg(feature = "plots")]
#[test]
fn results_are_a_table_and_plots() {
    let mut study = Study::new("report", Direction::Minimize)
        .sampler(Tpe::new())
        .seed(1);
    study.optimize(20, synthetic).unwrap();
    let csv = study.csv();
    assert!(csv.starts_with("number,state,value,seconds,lr,dropout,width,error\n"));
    assert_eq!(csv.lines().count(), 21);
    // The importance shares sum to 1, one a parameter, largest first.
    let importance = study.importance();
    assert_eq!(importance.len(), 3, "{importance:?}");
    let total: f64 = importance.iter().map(|p| p.1).sum();
    assert!((total - 1.0).abs() < 1e-12);
    assert!(importance.windows(2).all(|w| w[0].1 >= w[1].1));
    let dir = folder("report");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, result) in [
        (
            "objective.png",
            study.plot_objective(dir.join("objective.png")),
        ),
        (
            "importance.png",
            study.plot_importance(dir.join("importance.png")),
        ),
    ] {
        result.unwrap();
        let bytes = std::fs::read(dir.join(name)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{name}");
    }
    // Nothing to plot is an error, not an empty picture.
    let empty = Study::new("empty", Direction::Minimize);
    let e = empty.plot_objective(dir.join("empty.png")).unwrap_err();
    assert!(e.to_string().contains("no complete trial"), "{e}");
}
