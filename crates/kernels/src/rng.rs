//! Seeded random numbers: a sequential generator for initialisation, and a
//! counter-based hash for dropout masks, which any backend (a GPU thread included)
//! computes independently per element.

/// SplitMix64's finaliser: a bijective 64-bit mix with good avalanche.
#[inline]
pub const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform number in `[0, 1)` for element `index` of the stream `key`: the same
/// inputs give the same number on every backend.
#[inline]
pub fn uniform_at(key: u64, index: u64) -> f32 {
    let bits = mix64(key ^ mix64(index.wrapping_add(0x9e37_79b9_7f4a_7c15)));
    // The top 24 bits, exactly representable in an f32.
    (bits >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
}

/// A small, fast, seeded generator (SplitMix64) for weight initialisation and
/// shuffling. Not for cryptography.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.state)
    }

    /// A uniform number in `[0, 1)`.
    #[inline]
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// A uniform number in `[low, high)`.
    #[inline]
    pub fn uniform_in(&mut self, low: f32, high: f32) -> f32 {
        low + (high - low) * self.uniform()
    }

    /// An independent generator for a sub-stream (one per layer, say).
    pub fn fork(&mut self, stream: u64) -> Rng {
        Rng::new(mix64(self.next_u64() ^ mix64(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_is_in_range_and_roughly_flat() {
        let mut rng = Rng::new(7);
        let mut buckets = [0usize; 10];
        for _ in 0..100_000 {
            let u = rng.uniform();
            assert!((0.0..1.0).contains(&u));
            buckets[(u * 10.0) as usize] += 1;
        }
        for b in buckets {
            assert!((9_500..10_500).contains(&b), "{buckets:?}");
        }
    }

    #[test]
    fn counter_stream_is_deterministic_and_flat() {
        let mean: f32 = (0..50_000).map(|i| uniform_at(42, i)).sum::<f32>() / 50_000.0;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        assert_eq!(uniform_at(42, 17), uniform_at(42, 17));
        assert_ne!(uniform_at(42, 17), uniform_at(43, 17));
    }
}
