//! The embedding op on every backend present: gather, scatter-add, bad ids.

use super::*;
use crate::{Cpu, Error};

/// A 2-sequence batch of 3 ids each into a 5 x 3 table; id 4 appears twice, so its
/// gradient row sums two output rows.
fn check<B: EmbeddingKernel>(backend: &B) {
    let p = EmbeddingParams::new(2, 3, 5, 3).unwrap();
    let table: Vec<f32> = (0..15).map(|i| i as f32 * 0.5 - 3.0).collect();
    let ids = [4.0, 0.0, 2.0, 4.0, 1.0, 0.0];
    let t = backend.alloc_from(&table).unwrap();
    let x = backend.alloc_from(&ids).unwrap();
    let mut y = backend.alloc(18).unwrap();
    backend.embedding_fwd(&p, &x, &t, &mut y).unwrap();
    let y = backend.to_host(&y, 18).unwrap();
    for (i, &id) in ids.iter().enumerate() {
        let r = id as usize * 3;
        assert_eq!(&y[i * 3..i * 3 + 3], &table[r..r + 3], "row {i}");
    }

    let dy: Vec<f32> = (0..18).map(|i| (i as f32).sin()).collect();
    let g = backend.alloc_from(&dy).unwrap();
    let mut dt = backend.alloc_from(&[1.0; 15]).unwrap();
    backend.embedding_bwd(&p, &x, &g, &mut dt).unwrap();
    let dt = backend.to_host(&dt, 15).unwrap();
    let mut want = vec![1.0f32; 15];
    for (i, &id) in ids.iter().enumerate() {
        for c in 0..3 {
            want[id as usize * 3 + c] += dy[i * 3 + c];
        }
    }
    for (a, b) in dt.iter().zip(&want) {
        assert!((a - b).abs() < 1e-6, "{dt:?} vs {want:?}");
    }
}

#[test]
fn gathers_and_scatters_on_cpu() {
    check(&Cpu::with_threads(1).unwrap());
}

#[cfg(feature = "cuda")]
#[test]
fn gathers_and_scatters_on_cuda() {
    if let Some(gpu) = crate::cuda::test_device() {
        check(&gpu);
    }
}

#[test]
fn an_id_past_the_vocabulary_names_its_row_and_position() {
    let cpu = Cpu::with_threads(1).unwrap();
    let p = EmbeddingParams::new(2, 3, 5, 2).unwrap();
    let t = cpu.alloc(10).unwrap();
    let mut y = cpu.alloc_from(&[7.0; 12]).unwrap();
    for (bad, row, position) in [(5.0, 1, 1), (-1.0, 1, 1), (1.5, 1, 1)] {
        let x = cpu.alloc_from(&[0.0, 1.0, 2.0, 3.0, bad, 4.0]).unwrap();
        match cpu.embedding_fwd(&p, &x, &t, &mut y) {
            Err(Error::InvalidToken {
                row: r,
                position: q,
                vocabulary: 5,
                ..
            }) => assert_eq!((r, q), (row, position)),
            other => panic!("{other:?}"),
        }
        // Nothing was written.
        assert!(cpu.to_host(&y, 12).unwrap().iter().all(|&v| v == 7.0));
    }
    let err = cpu
        .embedding_fwd(
            &p,
            &cpu.alloc_from(&[0.0, 0.0, 9.0, 0.0, 0.0, 0.0]).unwrap(),
            &t,
            &mut y,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "embedding_fwd: the token id at batch row 0, position 2 is 9, not an id in 0..5"
    );
}
