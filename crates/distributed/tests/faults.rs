//! Faults between MPI ranks end the run with an error naming the rank, never a silent
//! wait: a rank that hangs, a rank that dies, ranks that disagree at start-up.
//!
//! Each test starts this test binary under `mpirun` (`fault_rank` below, told what to
//! do by an environment variable); without the feature `mpi` or without `mpirun` on
//! the path the tests say that they skipped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Output;
use std::time::{Duration, Instant};

use kiln_distributed::{World, local_mpirun};

/// What the rank started by `mpirun` does (and where it writes what it saw).
const FAULT: &str = "KILN_TEST_FAULT";

/// The collectives' timeout the faulty runs use, in seconds.
const TIMEOUT: &str = "2";

/// One rank of the tests below; does nothing unless one of them started it.
#[test]
fn fault_rank() {
    let Ok(fault) = std::env::var(FAULT) else {
        return;
    };
    let world = World::init().unwrap();
    let (rank, last) = (world.rank(), world.size() - 1);
    let mut sum = [0.0f32; 4];
    match fault.split_once(':') {
        // The last rank never joins the first all-reduce.
        Some(("hang", _)) => {
            if rank == last {
                std::thread::sleep(Duration::from_secs(120));
            }
            world.all_reduce_f32(&[1.0; 4], &mut sum).unwrap();
        }
        // The last rank exits without a word after one all-reduce.
        Some(("die", _)) => {
            world.all_reduce_f32(&[1.0; 4], &mut sum).unwrap();
            if rank == last {
                std::process::exit(3);
            }
            world.all_reduce_f32(&[1.0; 4], &mut sum).unwrap();
        }
        // Each rank has its own model; each writes the error it got.
        Some(("disagree", out)) => {
            let e = world
                .check_same("the model", 0xa0 + rank as u64)
                .unwrap_err();
            std::fs::write(format!("{out}.{rank}"), e.to_string()).unwrap();
        }
        _ => panic!("unknown fault {fault}"),
    }
}

/// `fault_rank` on `ranks` ranks doing `fault`, and how long the run took; `None`
/// (having said why) where the ranks cannot be started.
fn launch(ranks: usize, fault: &str) -> Option<(Output, Duration)> {
    if !cfg!(feature = "mpi") {
        println!("skipped: built without the feature `mpi`");
        return None;
    }
    let Some(mut mpirun) = local_mpirun(ranks) else {
        println!("skipped: no mpirun on the path");
        return None;
    };
    let started = Instant::now();
    let output = mpirun
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "fault_rank", "--test-threads=1", "--nocapture"])
        .env(FAULT, fault)
        .env("KILN_DISTRIBUTED_TIMEOUT", TIMEOUT)
        .output()
        .unwrap();
    let took = started.elapsed();
    println!(
        "{fault} on {ranks} ranks: {} after {:.1} s\n{}",
        output.status,
        took.as_secs_f64(),
        String::from_utf8_lossy(&output.stderr)
    );
    Some((output, took))
}

/// A failed run's messages, which must have come well within `limit`.
fn failure(output: &Output, took: Duration, limit: Duration) -> String {
    assert!(!output.status.success(), "the run succeeded");
    assert!(took < limit, "the run took {took:?}, more than {limit:?}");
    String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout)
}

#[test]
fn a_rank_that_hangs_is_named_by_the_others() {
    let Some((output, took)) = launch(3, "hang:") else {
        return;
    };
    // 2 s of timeout, 3 s of roll call, the start and the abort.
    let text = failure(&output, took, Duration::from_secs(60));
    assert!(
        text.contains("all-reduce (collective #0) waited 2 s for the other ranks"),
        "{text}"
    );
    assert!(text.contains("rank 2 did not arrive"), "{text}");
    assert!(!text.contains("rank 0 did not arrive"), "{text}");
}

#[test]
fn a_rank_that_dies_stops_the_others() {
    let Some((output, took)) = launch(2, "die:") else {
        return;
    };
    // The launcher sees the rank exit and stops the others, or they time out and name it.
    let text = failure(&output, took, Duration::from_secs(60));
    assert!(
        text.contains("rank 1 did not arrive") || text.contains(",1]"),
        "the messages do not name rank 1: {text}"
    );
}

#[test]
fn ranks_that_disagree_say_so_at_start_up() {
    let dir = std::env::temp_dir().join(format!("kiln-faults-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("error");
    let Some((output, _)) = launch(2, &format!("disagree:{}", out.display())) else {
        return;
    };
    assert!(output.status.success(), "{output:?}");
    for rank in 0..2 {
        let e = std::fs::read_to_string(format!("{}.{rank}", out.display())).unwrap();
        assert_eq!(
            e,
            "the ranks disagree on the model: ranks [0] have 0xa0, ranks [1] have 0xa1"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
