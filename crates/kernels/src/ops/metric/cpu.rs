//! Metric accumulation on the CPU: one serial pass (a batch of outputs is small).

use super::{MetricKernel, MetricKind, MetricParams, argmax, regression};
use crate::error::check_len;
use crate::ops::us;
use crate::{Cpu, CpuBuffer, Error, Result};

/// Adds `v` to the compensated sum at `acc[slot]` (sum) and `acc[slot + 1]`
/// (the running compensation, Kahan's `c`).
fn kahan_add(acc: &mut [f32], slot: usize, v: f32) {
    let y = v - acc[slot + 1];
    let t = acc[slot] + y;
    acc[slot + 1] = (t - acc[slot]) - y;
    acc[slot] = t;
}

impl MetricKernel for Cpu {
    fn metric_accumulate(
        &self,
        p: &MetricParams,
        output: &CpuBuffer,
        target: &CpuBuffer,
        acc: &mut CpuBuffer,
    ) -> Result<()> {
        const OP: &str = "metric_accumulate";
        let (batch, features) = (us(p.batch), us(p.features));
        check_len(OP, "output", batch * features, output.as_slice().len())?;
        check_len(OP, "target", p.target_len(), target.as_slice().len())?;
        check_len(OP, "acc", p.accumulator_len(), acc.as_slice().len())?;
        let output = &output.as_slice()[..batch * features];
        let target = &target.as_slice()[..p.target_len()];
        let acc = &mut acc.as_mut_slice()[..p.accumulator_len()];
        match p.kind {
            MetricKind::Regression => {
                for (&o, &t) in output.iter().zip(target) {
                    let e = o - t;
                    kahan_add(acc, regression::ABS_ERROR, e.abs());
                    kahan_add(acc, regression::SQUARED_ERROR, e * e);
                    kahan_add(acc, regression::TARGET, t);
                    kahan_add(acc, regression::TARGET_SQUARED, t * t);
                    acc[regression::COUNT] += 1.0;
                }
            }
            MetricKind::Classification => {
                let classes = p.classes();
                let (hits, count) = (classes * classes, classes * classes + 1);
                for (i, row) in output.chunks_exact(features).enumerate() {
                    let (truth, predicted, hit) = if features == 1 {
                        let truth = usize::from(target[i] >= 0.5);
                        let predicted = usize::from(row[0] >= p.threshold);
                        (truth, predicted, truth == predicted)
                    } else {
                        let truth = if p.sparse != 0 {
                            let v = target[i];
                            if !(v >= 0.0 && v.fract() == 0.0 && (v as usize) < features) {
                                return Err(Error::InvalidTarget {
                                    op: OP,
                                    index: i,
                                    value: v,
                                    classes: features,
                                });
                            }
                            v as usize
                        } else {
                            argmax(&target[i * features..(i + 1) * features])
                        };
                        let above = row.iter().filter(|&&v| v > row[truth]).count();
                        (truth, argmax(row), above < us(p.top_k.max(1)))
                    };
                    acc[truth * classes + predicted] += 1.0;
                    acc[hits] += f32::from(u8::from(hit));
                    acc[count] += 1.0;
                }
            }
        }
        Ok(())
    }
}
