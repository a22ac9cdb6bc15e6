//! Image augmentation fused with the conversion to `f32`: a random crop of the image
//! padded with zeros on every side, a random horizontal flip, and cutout (a square
//! set to zero at a random place), in that order, written straight into the batch
//! with the preprocessing applied; and the mirror image of every sample, for
//! test-time augmentation.
//!
//! The random choices of a sample come from 64 bits that the batcher derives from
//! (seed, epoch, sample index), so they do not depend on which thread fills it.

use crate::error::{Error, Result};
use crate::preprocess::{Affine, Element};
use crate::rng::mix64;

/// Mixed into a sample's bits to draw the cutout's centre, so that it is independent
/// of the crop and the flip, which read the bits themselves.
const CUTOUT_STREAM: u64 = 0xc0f7_a5e1_d2b4_9e63;

/// The augmentation of image samples (height x width x channels).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Augment {
    /// Pad the image with this many zero pixels on each side, then crop a random
    /// window of the original size (0: no crop).
    pub crop_padding: usize,
    /// Mirror the image left to right with probability 1/2.
    pub flip: bool,
    /// Cutout (DeVries & Taylor, 2017): the side of a square set to zero in every
    /// image, centred on a uniformly drawn pixel and clipped at the borders (`None`:
    /// no cutout). See [`Augment::cutout`].
    pub cutout: Option<usize>,
    /// Mirror every image left to right, not at random: the second view of mirror
    /// test-time augmentation. See [`Augment::mirror`].
    pub mirror: bool,
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

    /// The same augmentation with cutout: after the crop and the flip, a `side` x
    /// `side` square of every image is set to 0 in the model's input, that is after
    /// the preprocessing.
    ///
    /// Its centre is a pixel drawn uniformly from the whole image, and the square is
    /// clipped at the borders, as in the paper's code, so a square near an edge cuts
    /// less (rows `cy - side / 2 .. cy - side / 2 + side`, likewise the columns; for
    /// an even side the paper's `cy - side / 2 .. cy + side / 2`). The value 0 after
    /// the preprocessing is the paper's choice (its code multiplies the normalised
    /// tensor by a mask) and torchvision's `RandomErasing`'s default: with a pipeline
    /// that normalises by the data's per-channel mean and deviation it is the mean
    /// colour, with scaling alone black. The crop's padding, by contrast, is a zero
    /// byte before the preprocessing, as in torchvision's `RandomCrop(padding=..)`.
    ///
    /// The side must lie in `1..=min(height, width)`: [`Batcher::new`] refuses
    /// others.
    ///
    /// [`Batcher::new`]: crate::Batcher::new
    pub fn cutout(mut self, side: usize) -> Self {
        self.cutout = Some(side);
        self
    }

    /// The same augmentation with every image mirrored left to right (the width
    /// axis reversed), after the crop and before the cutout: the batches of the
    /// mirrored view that test-time augmentation averages over. With
    /// [`Augment::flip`] as well, the images that the random flip mirrors come out
    /// unmirrored.
    pub fn mirror(mut self) -> Self {
        self.mirror = true;
        self
    }

    /// Whether this changes nothing.
    pub fn is_none(&self) -> bool {
        self.crop_padding == 0 && !self.flip && !self.mirror && self.cutout.is_none()
    }

    /// Checks that samples of `shape` can be augmented: `[height, width, channels]`
    /// with the padding at most the smaller side and the cutout's side in
    /// `1..=min(height, width)`.
    pub(crate) fn check(&self, shape: &[usize]) -> Result<Geometry> {
        match *shape {
            [h, w, c] => {
                if self.crop_padding > h.min(w) {
                    return Err(Error::Config(format!(
                        "crop padding {} exceeds the {h}x{w} image",
                        self.crop_padding
                    )));
                }
                match self.cutout {
                    Some(0) => Err(Error::Config(
                        "the cutout's side must be at least 1 pixel (leave cutout out for none)"
                            .into(),
                    )),
                    Some(side) if side > h.min(w) => Err(Error::Config(format!(
                        "the cutout's side {side} exceeds the {h}x{w} image: it must lie in \
                         1..={}",
                        h.min(w)
                    ))),
                    _ => Ok(Geometry { h, w, c }),
                }
            }
            _ if self.is_none() => Ok(Geometry { h: 1, w: 1, c: 1 }),
            _ => Err(Error::Config(format!(
                "crop, flip, mirror and cutout need image samples [height, width, \
                 channels], got shape {shape:?}"
            ))),
        }
    }

    /// The rows `y0..y1` and columns `x0..x1` that the cutout drawn from `bits` sets to
    /// zero in an image of geometry `g` (`None` without cutout).
    pub(crate) fn cutout_window(&self, g: Geometry, bits: u64) -> Option<CutWindow> {
        let side = self.cutout?;
        let more = mix64(bits ^ CUTOUT_STREAM);
        // Uniform centres by multiply-shift on 32 bits each (bias below 2^-16 for any
        // image side under 65,536).
        let cy = (((more & 0xffff_ffff) * g.h as u64) >> 32) as usize;
        let cx = (((more >> 32) * g.w as u64) >> 32) as usize;
        let (before, after) = (side / 2, side - side / 2);
        Some(CutWindow {
            y0: cy.saturating_sub(before),
            y1: (cy + after).min(g.h),
            x0: cx.saturating_sub(before),
            x1: (cx + after).min(g.w),
        })
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
        if self.crop_padding == 0 && !self.flip && !self.mirror {
            affine.apply(src, dst);
        } else {
            self.crop_and_flip(g, src, dst, affine, bits);
        }
        if let Some(cut) = self.cutout_window(g, bits) {
            let row_len = g.w * g.c;
            for y in cut.y0..cut.y1 {
                dst[y * row_len + cut.x0 * g.c..y * row_len + cut.x1 * g.c].fill(0.0);
            }
        }
    }

    /// [`Augment::apply`]'s crop, flip and mirror.
    fn crop_and_flip<T: Element>(
        &self,
        g: Geometry,
        src: &[T],
        dst: &mut [f32],
        affine: &Affine,
        bits: u64,
    ) {
        let p = self.crop_padding;
        let span = (2 * p + 1) as u64;
        // Offsets of the window in the padded image, in 0..=2p; p leaves it in place.
        let (dy, dx) = if p > 0 {
            ((bits % span) as usize, ((bits >> 24) % span) as usize)
        } else {
            (0, 0)
        };
        let flip = (self.flip && (bits >> 63) == 1) != self.mirror;
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

/// The region that a cutout sets to zero: rows `y0..y1`, columns `x0..x1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CutWindow {
    pub y0: usize,
    pub y1: usize,
    pub x0: usize,
    pub x1: usize,
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

    /// A 5x4 RGB image and a scaling and normalisation of it.
    fn image() -> (Geometry, Vec<u8>, Affine) {
        let src = (0..60).map(|i| (i * 7 % 251) as u8).collect();
        let affine = crate::Pipeline::new()
            .scale(0.5)
            .normalize(vec![1.0, 2.0, 3.0], vec![2.0, 1.0, 0.5])
            .compile(&[5, 4, 3])
            .unwrap();
        (Geometry { h: 5, w: 4, c: 3 }, src, affine)
    }

    #[test]
    fn crop_and_flip_match_the_reference() {
        let (g, src, affine) = image();
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
    fn mirror_reverses_every_image_after_the_crop() {
        let (g, src, affine) = image();
        for (aug, crop) in [
            (Augment::none().mirror(), 0),
            (Augment::none().crop(2).mirror(), 2),
            (Augment::none().crop(2).flip().mirror(), 2),
        ] {
            for bits in 0..100u64 {
                let bits = mix64(bits);
                let mut out = vec![0f32; 60];
                aug.apply(g, &src, &mut out, &affine, bits);
                let (dy, dx) = if crop > 0 {
                    ((bits % 5) as usize, ((bits >> 24) % 5) as usize)
                } else {
                    (0, 0)
                };
                let flipped = aug.flip && bits >> 63 == 1;
                let want = reference(&src, g, crop, dy, dx, !flipped, &affine);
                assert_eq!(out, want, "{aug:?}, bits {bits:#x}");
            }
        }
        assert!(!Augment::none().mirror().is_none());
        assert!(Augment::none().mirror().check(&[10]).is_err());
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

    /// The rows or columns that a cutout of `side` centred on `centre` covers in a
    /// side of `len` pixels, computed apart from the batcher's code.
    fn covered(centre: usize, side: usize, len: usize) -> std::ops::Range<usize> {
        let start = centre as i64 - (side / 2) as i64;
        let end = start + side as i64;
        (start.max(0) as usize)..(end.min(len as i64) as usize)
    }

    /// The cutout's centre drawn from `bits`: a uniform pixel from its own stream.
    fn centre(bits: u64, g: Geometry) -> (usize, usize) {
        let more = mix64(bits ^ CUTOUT_STREAM);
        let unit = |v: u64| v as f64 / 4_294_967_296.0;
        (
            (unit(more & 0xffff_ffff) * g.h as f64) as usize,
            (unit(more >> 32) * g.w as f64) as usize,
        )
    }

    #[test]
    fn cutout_zeroes_a_square_of_the_cropped_and_flipped_image() {
        let (g, src, affine) = image();
        for side in [1, 2, 3, 4] {
            let aug = Augment::none().crop(2).flip().cutout(side);
            for bits in 0..300u64 {
                let bits = mix64(bits);
                let mut out = vec![0f32; 60];
                aug.apply(g, &src, &mut out, &affine, bits);
                // The crop and flip draw exactly what they draw without cutout.
                let (dy, dx) = ((bits % 5) as usize, ((bits >> 24) % 5) as usize);
                let mut want = reference(&src, g, 2, dy, dx, bits >> 63 == 1, &affine);
                let (cy, cx) = centre(bits, g);
                for y in covered(cy, side, g.h) {
                    for x in covered(cx, side, g.w) {
                        want[(y * g.w + x) * g.c..(y * g.w + x + 1) * g.c].fill(0.0);
                    }
                }
                assert_eq!(out, want, "side {side}, bits {bits:#x}");
            }
        }
    }

    #[test]
    fn cutout_centres_are_uniform_and_areas_as_expected() {
        // Pixels 1..=255 and no crop: the cut pixels are exactly the zeros.
        let g = Geometry { h: 8, w: 6, c: 2 };
        let src: Vec<u8> = (0..96).map(|i| (i % 255 + 1) as u8).collect();
        let affine = Affine::identity(96);
        let (side, draws) = (4, 60_000usize);
        let aug = Augment::none().cutout(side);
        let mut centres = vec![0usize; g.h * g.w];
        let mut per_pixel = vec![0usize; g.h * g.w];
        // Against the crop's row offset and the flip drawn from the same bits.
        let mut with_crop = vec![0usize; 5 * g.h];
        let mut with_flip = vec![0usize; 2 * g.w];
        let mut area_sum = 0usize;
        let mut out = vec![0f32; 96];
        for i in 0..draws {
            let bits = crate::rng::hash3(3, 1, i as u64);
            aug.apply(g, &src, &mut out, &affine, bits);
            let cut: Vec<usize> = (0..g.h * g.w).filter(|&p| out[p * g.c] == 0.0).collect();
            // A clipped square: a rectangle of whole pixels, every channel cut.
            let (ys, xs): (Vec<usize>, Vec<usize>) = cut.iter().map(|p| (p / g.w, p % g.w)).unzip();
            let (y0, y1) = (ys[0], ys[ys.len() - 1] + 1);
            let (x0, x1) = (*xs.iter().min().unwrap(), *xs.iter().max().unwrap() + 1);
            assert_eq!(
                cut.len(),
                (y1 - y0) * (x1 - x0),
                "draw {i}: not a rectangle"
            );
            // At least the half from the centre on: `side - side / 2` rows and columns.
            let least = side - side / 2;
            assert!((least..=side).contains(&(y1 - y0)) && (least..=side).contains(&(x1 - x0)));
            assert_eq!(out.iter().filter(|&&v| v == 0.0).count(), cut.len() * g.c);
            // The centre: the square's middle, or where it was clipped from.
            let cy = if y0 > 0 {
                y0 + side / 2
            } else {
                y1 - (side - side / 2)
            };
            let cx = if x0 > 0 {
                x0 + side / 2
            } else {
                x1 - (side - side / 2)
            };
            centres[cy * g.w + cx] += 1;
            with_crop[(bits % 5) as usize * g.h + cy] += 1;
            with_flip[(bits >> 63) as usize * g.w + cx] += 1;
            for &p in &cut {
                per_pixel[p] += 1;
            }
            area_sum += cut.len();
        }
        // Counts within 5 standard deviations of their expectation.
        let close = |count: usize, p: f64, what: &str| {
            let (mean, sd) = (draws as f64 * p, (draws as f64 * p * (1.0 - p)).sqrt());
            assert!(
                (count as f64 - mean).abs() < 5.0 * sd,
                "{what}: {count} against {mean:.0} +- {sd:.0}"
            );
        };
        for (cell, &n) in centres.iter().enumerate() {
            close(n, 1.0 / (g.h * g.w) as f64, &format!("centre {cell}"));
        }
        for (cell, &n) in with_crop.iter().enumerate() {
            close(
                n,
                1.0 / (5 * g.h) as f64,
                &format!("crop offset and row {cell}"),
            );
        }
        for (cell, &n) in with_flip.iter().enumerate() {
            close(
                n,
                1.0 / (2 * g.w) as f64,
                &format!("flip and column {cell}"),
            );
        }
        // A pixel is cut when the centre falls in the `side` rows and columns around
        // it: clipped squares make the borders less likely.
        let rows = |y: usize| {
            (0..g.h)
                .filter(|&c| covered(c, side, g.h).contains(&y))
                .count()
        };
        let cols = |x: usize| {
            (0..g.w)
                .filter(|&c| covered(c, side, g.w).contains(&x))
                .count()
        };
        for (p, &n) in per_pixel.iter().enumerate() {
            let want = (rows(p / g.w) * cols(p % g.w)) as f64 / (g.h * g.w) as f64;
            close(n, want, &format!("pixel {p}"));
        }
        // E[area] = E[rows] E[cols]: the two coordinates are independent.
        let mean_len = |len: usize| {
            (0..len).map(|c| covered(c, side, len).len()).sum::<usize>() as f64 / len as f64
        };
        let expected = mean_len(g.h) * mean_len(g.w);
        let area = area_sum as f64 / draws as f64;
        assert!(
            (area - expected).abs() < 0.02 * expected,
            "{area} against {expected}"
        );
        assert!(
            expected < (side * side) as f64,
            "clipping shrinks the mean area"
        );
    }

    #[test]
    fn cutout_sides_outside_the_image_are_refused() {
        let message = |a: Augment, shape: &[usize]| a.check(shape).unwrap_err().to_string();
        assert!(message(Augment::none().cutout(0), &[8, 8, 3]).contains("at least 1"));
        let too_wide = message(Augment::none().cutout(5), &[10, 4, 3]);
        assert!(
            too_wide.contains("side 5 exceeds the 10x4 image"),
            "{too_wide}"
        );
        assert!(message(Augment::none().cutout(3), &[10]).contains("cutout"));
        assert!(Augment::none().cutout(4).check(&[10, 4, 3]).is_ok());
        assert!(!Augment::none().cutout(4).is_none());
    }
}
