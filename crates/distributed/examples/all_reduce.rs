//! The bandwidth of [`World::all_reduce_f32`] over MPI: sums of f32 buffers of 4 KiB to
//! 16 MiB, each timed over many rounds, the slowest rank's time per call and the bus
//! bandwidth that NCCL and the OSU benchmarks report (`2 (N - 1) / N x bytes / time`).
//! `all_reduce.c` beside it measures MPI alone the same way.
//!
//! ```text
//! cargo build --release -p kiln-distributed --features mpi --example all_reduce
//! mpirun -np 2 target/release/examples/all_reduce
//! ```

use std::time::Instant;

use kiln_distributed::World;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let world = World::init()?;
    let (rank, size) = (world.rank(), world.size());
    if world.is_root() {
        println!("World::all_reduce_f32 over MPI, {size} ranks");
    }
    let mut bytes = 4096usize;
    while bytes <= 16 << 20 {
        let n = bytes / 4;
        let (send, mut recv) = (vec![1.0f32; n], vec![0.0f32; n]);
        let rounds = match bytes {
            0..=65_536 => 2000,
            65_537..=1_048_576 => 200,
            _ => 20,
        };
        for _ in 0..10 {
            world.all_reduce_f32(&send, &mut recv)?;
        }
        let started = Instant::now();
        for _ in 0..rounds {
            world.all_reduce_f32(&send, &mut recv)?;
        }
        let seconds = started.elapsed().as_secs_f64() / f64::from(rounds);
        // Every rank's time, in rank order (a sum of one-hot vectors).
        let mut times = vec![0.0; size];
        times[rank] = seconds;
        world.sum_f64(&mut times)?;
        let slowest = times.iter().copied().fold(0.0, f64::max);
        if world.is_root() {
            let bus = 2.0 * (size - 1) as f64 / size as f64 * bytes as f64 / slowest / 1e9;
            println!(
                "{bytes:>9} bytes: {:>9.1} us, bus bandwidth {bus:>6.2} GB/s",
                slowest * 1e6
            );
        }
        assert!(recv.iter().all(|v| *v == size as f32), "a wrong sum");
        bytes *= 4;
    }
    Ok(())
}
