//! Image augmentation fused with the conversion to `f32`: a random crop of the image
//! padded with zeros on every side, and a random horizontal flip, written straight
//! into the batch with the preprocessing applied.
//!
//! The random choices of a sample come from 64 bits that the batcher derives from
//! (seed, epoch, sample index), so they do not depend on which thread fills it.

use crate::error::{Error, Result};
use crate::preprocess::{Affine, Element};

/// The augmentation of image samples (height x width x channels).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Augment {
    /// Pad the image with this many zero pixels on each side, then crop a random
    /// window of the original size (0: no crop).
    pub crop_padding: usize,
    /// Mirror the image left to right with probability 1/2.
    pub flip: bool,
}

impl Augment {
    /// No augmentation.
    pub fn none() -> Self {
        Self::default()
    }

    /// The same augmentation with random crops after `padding` pixels of padding.
    pub fn crop(mut self, padding: usize) -> Self {
        self.crop_padding = padding;
        self
    }

    /// The same augmentation with random horizontal flips.
    pub fn flip(mut self) -> Self {
        self.flip = true;
        self
    }

    /// Whether this changes nothing.
    pub fn is_none(&self) -> bool {
        self.crop_padding == 0 && !self.flip
    }

    /// Checks that samples of `shape` can be augmented: `[height, width, channels]`
    /// with the padding at most the smaller side.
    pub(crate) fn check(&self, shape: &[usize]) -> Result<Geometry> {
        match *shape {
            [h, w, c] => {
                if self.crop_padding > h.min(w) {
                    return Err(Error::Config(format!(
                        "crop padding {} exceeds the {h}x{w} image",
                        self.crop_padding
                    )));
                }
                Ok(Geometry { h, w, c })
            }
            _ if self.is_none() => Ok(Geometry { h: 1, w: 1, c: 1 }),
            _ => Err(Error::Config(format!(
                "crop and flip need image samples [height, width, channels], got shape {shape:?}"
            ))),
        }
    }

    /// Writes `src` (one HWC image) preprocessed by `affine` and augmented with the
    /// choices drawn from `bits` into `dst`.
    pub(crate) fn apply<T: Element>(
        &self,
        g: Geometry,
        src: &[T],
        dst: &mut [f32],
        affine: &Affine,
        bits: u64,
    ) {
        if self.is_none() {
            affine.apply(src, dst);
            return;
        }
        let p = self.crop_padding;
        let span = (2 * p + 1) as u64;
        // Offsets of the window in the padded image, in 0..=2p; p leaves it in place.
        let (dy, dx) = if p > 0 {
            ((bits % span) as usize, ((bits >> 24) % span) as usize)
        } else {
            (0, 0)
        };
        let flip = self.flip && (bits >> 63) == 1;
        let Geometry { h, w, c } = g;
        let (mul, add) = (affine.mul(), affine.add());
        let row_len = w * c;
        // Output columns whose source column (x + dx - p) lies inside the image.
        let x0 = p.saturating_sub(dx).min(w);
        let x1 = (w + p).saturating_sub(dx).min(w).max(x0);
        for y in 0..h {
            let row = y * row_len..(y + 1) * row_len;
            let (d, m, a) = (&mut dst[row.clone()], &mul[row.clone()], &add[row]);
            let sy = (y + dy).wrapping_sub(p);
            if sy >= h {
                d.copy_from_slice(a);
                continue;
            }
            let s = &src[sy * row_len..(sy + 1) * row_len];
            if !flip {
                d[..x0 * c].copy_from_slice(&a[..x0 * c]);
                d[x1 * c..].copy_from_slice(&a[x1 * c..]);
                let src_x0 = x0 + dx - p;
                let sv = &s[src_x0 * c..(src_x0 + x1 - x0) * c];
                let range = x0 * c..x1 * c;
                for (((o, &v), &mm), &aa) in d[range.clone()]
                    .iter_mut()
                    .zip(sv)
                    .zip(&m[range.clone()])
                    .zip(&a[range])
                {
                    *o = v.to_f32() * mm + aa;
                }
            } else {
                // Output column x shows column w - 1 - x of the unflipped crop.
                for x in 0..w {
                    let cx = w - 1 - x;
                    let o = x * c;
                    if cx >= x0 && cx < x1 {
                        let sx = (cx + dx - p) * c;
                        for k in 0..c {
                            d[o + k] = s[sx + k].to_f32() * m[o + k] + a[o + k];
                        }
                    } else {
                        d[o..o + c].copy_from_slice(&a[o..o + c]);
                    }
                }
            }
        }
    }
}

/// The dimensions of an image sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: pad, crop, flip, then the affine, one pixel at a time.
    fn reference(
        src: &[u8],
        g: Geometry,
        p: usize,
        dy: usize,
        dx: usize,
        flip: bool,
        affine: &Affine,
    ) -> Vec<f32> {
        let mut out = vec![0f32; src.len()];
        for y in 0..g.h {
            for x in 0..g.w {
                let cx = if flip { g.w - 1 - x } else { x };
                let (py, px) = (y + dy, cx + dx);
                for k in 0..g.c {
                    let v = if py >= p && py - p < g.h && px >= p && px - p < g.w {
                        f32::from(src[((py - p) * g.w + px - p) * g.c + k])
                    } else {
                        0.0
                    };
                    let o = (y * g.w + x) * g.c + k;
                    out[o] = v * affine.mul()[o] + affine.add()[o];
                }
            }
        }
        out
    }

    #[test]
    fn crop_and_flip_match_the_reference() {
        let g = Geometry { h: 5, w: 4, c: 3 };
        let src: Vec<u8> = (0..60).map(|i| (i * 7 % 251) as u8).collect();
        let affine = crate::Pipeline::new()
            .scale(0.5)
            .normalize(vec![1.0, 2.0, 3.0], vec![2.0, 1.0, 0.5])
            .compile(&[5, 4, 3])
            .unwrap();
        let aug = Augment::none().crop(2).flip();
        let mut seen = std::collections::HashSet::new();
        for bits in 0..400u64 {
            let bits = crate::rng::mix64(bits);
            let mut out = vec![0f32; 60];
            aug.apply(g, &src, &mut out, &affine, bits);
            let (dy, dx) = ((bits % 5) as usize, ((bits >> 24) % 5) as usize);
            let flip = bits >> 63 == 1;
            seen.insert((dy, dx, flip));
            assert_eq!(
                out,
                reference(&src, g, 2, dy, dx, flip, &affine),
                "bits {bits:#x}"
            );
        }
        assert_eq!(seen.len(), 50, "every window and flip occurs");
    }

    #[test]
    fn no_augmentation_is_the_affine_alone() {
        let affine = Affine::identity(4);
        let mut out = [0f32; 4];
        Augment::none().apply(
            Geometry { h: 1, w: 1, c: 4 },
            &[1u8, 2, 3, 4],
            &mut out,
            &affine,
            99,
        );
        assert_eq!(out, [1.0, 2.0, 3.0, 4.0]);
        assert!(Augment::none().crop(1).check(&[10]).is_err());
        assert!(Augment::none().crop(9).check(&[8, 8, 3]).is_err());
        assert!(Augment::none().check(&[10]).is_ok());
    }
}
