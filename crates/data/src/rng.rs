//! Seeded random numbers: a sequential generator (SplitMix64) for permutations and
//! splits, and a counter-based hash for augmentation, whose value for a sample depends
//! only on (seed, epoch, sample index) and never on the thread that computes it.

/// SplitMix64's finaliser: a bijective 64-bit mix with good avalanche.
#[inline]
pub const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// 64 random bits for the triple `(a, b, c)`: the counter-based stream that
/// augmentation draws from.
#[inline]
pub const fn hash3(a: u64, b: u64, c: u64) -> u64 {
    mix64(mix64(mix64(a ^ GOLDEN).wrapping_add(b) ^ GOLDEN).wrapping_add(c))
}

/// A small, fast, seeded generator (SplitMix64). Not for cryptography.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The generator of stream `stream` under `seed` (one per epoch, say).
    pub fn stream(seed: u64, stream: u64) -> Self {
        Self::new(hash3(seed, stream, 0x5eed))
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix64(self.state)
    }

    /// A uniform integer in `0..n` (`n > 0`), by Lemire's multiply-shift, whose
    /// bias is below 2^-32 for every `n` a data set can have.
    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Shuffles `items` in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// The permutation of `0..n` for `epoch` under `seed`.
pub fn permutation(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    Rng::stream(seed, epoch).shuffle(&mut order);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutations_are_seeded_and_complete() {
        let a = permutation(1000, 7, 3);
        assert_eq!(a, permutation(1000, 7, 3));
        assert_ne!(a, permutation(1000, 7, 4));
        assert_ne!(a, permutation(1000, 8, 3));
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn below_is_in_range_and_roughly_uniform() {
        let mut rng = Rng::new(1);
        let mut counts = [0usize; 5];
        for _ in 0..50_000 {
            counts[rng.below(5)] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn hash3_depends_on_every_argument() {
        let h = hash3(1, 2, 3);
        assert_ne!(h, hash3(0, 2, 3));
        assert_ne!(h, hash3(1, 0, 3));
        assert_ne!(h, hash3(1, 2, 0));
        assert_ne!(hash3(1, 2, 3), hash3(1, 3, 2));
    }
}
