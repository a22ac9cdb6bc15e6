//! The run-time [`Shape`] and the compile-time shape markers ([`Rank1`], [`Rank2`],
//! [`Rank3`], [`Tokens`]) that make a batch of the wrong shape a type error.

use std::fmt;

/// The largest rank a per-sample shape can have.
///
/// Four covers images (`[h, w, c]`), sequences (`[time, features]`) and a spare axis
/// for attention heads.
pub const MAX_RANK: usize = 4;

/// The shape of one sample: up to [`MAX_RANK`] dimensions, batch excluded.
///
/// `Shape` is `Copy` and usable in `const` context, so the `model!` macro can emit
/// shapes as constants.
///
/// A shape of token ids ([`Shape::tokens`]) also carries its vocabulary: its values
/// are integers below it, which only an `Embedding` takes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    dims: [usize; MAX_RANK],
    rank: usize,
    /// The vocabulary of token ids; 0 for real values.
    vocabulary: usize,
}

impl Shape {
    /// A shape with the given dimensions.
    ///
    /// # Panics
    /// Panics (at compile time when used in a `const`) if `dims` has more than
    /// [`MAX_RANK`] entries. Use [`Shape::try_new`] for user-supplied dimensions.
    // A panic in a `const` is a compile error, which is what an impossible shape
    // written into source deserves; run-time callers use `try_new`.
    #[allow(clippy::panic)]
    pub const fn new(dims: &[usize]) -> Self {
        match Self::try_new(dims) {
            Some(shape) => shape,
            None => panic!("a kiln shape has at most MAX_RANK dimensions"),
        }
    }

    /// A shape with the given dimensions, or `None` if there are more than [`MAX_RANK`].
    pub const fn try_new(dims: &[usize]) -> Option<Self> {
        if dims.len() > MAX_RANK {
            return None;
        }
        let mut out = [0; MAX_RANK];
        let mut i = 0;
        while i < dims.len() {
            out[i] = dims[i];
            i += 1;
        }
        Some(Self {
            dims: out,
            rank: dims.len(),
            vocabulary: 0,
        })
    }

    /// A shape of token ids below `vocabulary`: `tokens[64] of 65`.
    ///
    /// # Panics
    /// As [`Shape::new`].
    pub const fn tokens(dims: &[usize], vocabulary: usize) -> Self {
        let mut shape = Self::new(dims);
        shape.vocabulary = vocabulary;
        shape
    }

    /// The vocabulary when the values are token ids, `None` for real values.
    pub const fn vocabulary(&self) -> Option<usize> {
        if self.vocabulary == 0 {
            None
        } else {
            Some(self.vocabulary)
        }
    }

    /// `(time, features)` when the shape is a real-valued sequence (rank 2).
    pub const fn as_sequence(&self) -> Option<(usize, usize)> {
        if self.rank == 2 && self.vocabulary == 0 {
            Some((self.dims[0], self.dims[1]))
        } else {
            None
        }
    }

    /// The number of dimensions.
    pub const fn rank(&self) -> usize {
        self.rank
    }

    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.dims[..self.rank]
    }

    /// Dimension `axis`, or `None` past the rank.
    pub const fn dim(&self, axis: usize) -> Option<usize> {
        if axis < self.rank {
            Some(self.dims[axis])
        } else {
            None
        }
    }

    /// The number of elements of one sample (1 for a rank-0 shape).
    pub const fn size(&self) -> usize {
        let mut size = 1;
        let mut i = 0;
        while i < self.rank {
            size *= self.dims[i];
            i += 1;
        }
        size
    }

    /// The number of elements of one sample, or `None` if it overflows `usize`.
    pub const fn checked_size(&self) -> Option<usize> {
        let mut size: usize = 1;
        let mut i = 0;
        while i < self.rank {
            size = match size.checked_mul(self.dims[i]) {
                Some(s) => s,
                None => return None,
            };
            i += 1;
        }
        Some(size)
    }

    /// `(height, width, channels)` when the shape is an image (rank 3).
    pub const fn as_image(&self) -> Option<(usize, usize, usize)> {
        if self.rank == 3 {
            Some((self.dims[0], self.dims[1], self.dims[2]))
        } else {
            None
        }
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Shape {
    /// Writes `[2, 2, 128]`, or `tokens[64] of 65` for token ids.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.vocabulary != 0 {
            f.write_str("tokens")?;
        }
        f.write_str("[")?;
        for (i, d) in self.dims().iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")?;
        if self.vocabulary != 0 {
            write!(f, " of {}", self.vocabulary)?;
        }
        Ok(())
    }
}

/// A per-sample shape known at compile time.
///
/// The generated model's `forward` takes a `Tensor<S, B>` whose `S` is the model's
/// input marker, so a batch of another shape does not type-check.
pub trait StaticShape: Copy + Send + Sync + 'static {
    /// The dimensions.
    const DIMS: &'static [usize];
    /// The number of elements of one sample.
    const SIZE: usize;
    /// The run-time [`Shape`] with the same dimensions.
    const SHAPE: Shape = Shape::new(Self::DIMS);
}

/// Compile-time marker of a rank-1 sample shape `[A]` (a feature vector).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rank1<const A: usize>;

/// Compile-time marker of a rank-2 sample shape `[A, B]` (a sequence: time, features).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rank2<const A: usize, const B: usize>;

/// Compile-time marker of a rank-3 sample shape `[A, B, C]` (an image: height, width,
/// channels).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rank3<const A: usize, const B: usize, const C: usize>;

/// Compile-time marker of a sequence of `T` token ids below `V` (`input: tokens[T] of
/// V`).
///
/// A batch of it is a tensor of its own type, so pixels or features cannot be given
/// where token ids belong; the ids travel as exact `f32` values (every integer below
/// 2^24 is one), the way class labels reach the loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tokens<const T: usize, const V: usize>;

impl<const T: usize, const V: usize> StaticShape for Tokens<T, V> {
    const DIMS: &'static [usize] = &[T];
    const SIZE: usize = T;
    const SHAPE: Shape = Shape::tokens(&[T], V);
}

impl<const A: usize> StaticShape for Rank1<A> {
    const DIMS: &'static [usize] = &[A];
    const SIZE: usize = A;
}

impl<const A: usize, const B: usize> StaticShape for Rank2<A, B> {
    const DIMS: &'static [usize] = &[A, B];
    const SIZE: usize = A * B;
}

impl<const A: usize, const B: usize, const C: usize> StaticShape for Rank3<A, B, C> {
    const DIMS: &'static [usize] = &[A, B, C];
    const SIZE: usize = A * B * C;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_size() {
        let s = Shape::new(&[2, 2, 128]);
        assert_eq!(s.to_string(), "[2, 2, 128]");
        assert_eq!(s.size(), 512);
        assert_eq!(s.rank(), 3);
        assert_eq!(s.as_image(), Some((2, 2, 128)));
        assert_eq!(Shape::new(&[7]).as_image(), None);
    }

    #[test]
    fn too_many_dims_is_refused() {
        assert!(Shape::try_new(&[1, 2, 3, 4, 5]).is_none());
    }

    #[test]
    fn markers_match_runtime_shapes() {
        assert_eq!(<Rank3<32, 32, 3>>::SHAPE, Shape::new(&[32, 32, 3]));
        assert_eq!(<Rank3<32, 32, 3>>::SIZE, 3072);
        assert_eq!(<Rank2<16, 8>>::DIMS, &[16, 8]);
        assert_eq!(<Rank1<10>>::SIZE, 10);
    }

    #[test]
    fn token_shapes_carry_their_vocabulary() {
        let tokens = <Tokens<64, 65>>::SHAPE;
        assert_eq!(tokens.to_string(), "tokens[64] of 65");
        assert_eq!(tokens.vocabulary(), Some(65));
        assert_eq!(tokens.dims(), &[64]);
        assert_ne!(tokens, Shape::new(&[64]));
        assert_eq!(Shape::new(&[64]).vocabulary(), None);
        assert_eq!(Shape::new(&[16, 8]).as_sequence(), Some((16, 8)));
    }
}
