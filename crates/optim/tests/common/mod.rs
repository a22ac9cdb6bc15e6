//! Parameters without a model: tensors whose gradients a test sets by hand.

use kiln_kernels::{
    Cpu, CpuBuffer, ParamMut, ParamRef, Storage, Trainable, ViewParams, VisitParams,
};
use kiln_shape::Shape;

/// Named tensors and their gradients on the CPU.
pub struct Tensors {
    pub cpu: Cpu,
    pub entries: Vec<(&'static str, &'static str, Shape, CpuBuffer, CpuBuffer)>,
}

impl Tensors {
    /// `dense.weight` and `dense.bias`-style tensors with the given values.
    pub fn new(cpu: &Cpu, tensors: &[(&'static str, &'static str, &[usize], &[f32])]) -> Self {
        let entries = tensors
            .iter()
            .map(|(layer, name, dims, values)| {
                (
                    *layer,
                    *name,
                    Shape::new(dims),
                    cpu.alloc_from(values).unwrap(),
                    cpu.alloc(values.len()).unwrap(),
                )
            })
            .collect();
        Self {
            cpu: cpu.clone(),
            entries,
        }
    }

    /// Sets every gradient.
    pub fn set_grads(&mut self, grads: &[Vec<f32>]) {
        for (entry, g) in self.entries.iter_mut().zip(grads) {
            self.cpu.upload(g, &mut entry.4).unwrap();
        }
    }

    /// Every tensor's values.
    pub fn values(&self) -> Vec<Vec<f32>> {
        self.entries
            .iter()
            .map(|e| self.cpu.to_host(&e.3, e.2.size()).unwrap())
            .collect()
    }
}

impl Trainable<Cpu> for Tensors {
    fn backend(&self) -> &Cpu {
        &self.cpu
    }

    fn parameters<'a>(&'a self, f: ViewParams<'_, 'a, Cpu>) -> kiln_kernels::Result<()> {
        for (layer, name, shape, value, grad) in &self.entries {
            f(ParamRef {
                layer,
                kind: "Tensor",
                name,
                shape: *shape,
                value,
                grad,
            })?;
        }
        Ok(())
    }

    fn visit_parameters<'a>(&'a mut self, f: VisitParams<'_, 'a, Cpu>) -> kiln_kernels::Result<()> {
        for (layer, name, shape, value, grad) in &mut self.entries {
            f(ParamMut {
                layer,
                kind: "Tensor",
                name,
                shape: *shape,
                value,
                grad,
            })?;
        }
        Ok(())
    }
}
