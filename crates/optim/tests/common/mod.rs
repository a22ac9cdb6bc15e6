//! Parameters without a model: tensors whose gradients a test sets by hand, and saved
//! state beside them.

// Each test program uses a part of the helpers.
#![allow(dead_code)]

use kiln_kernels::{
    Cpu, CpuBuffer, ParamMut, ParamRef, StateMut, StateRef, Storage, Trainable, ViewParams,
    ViewState, VisitParams, VisitState,
};
use kiln_shape::Shape;

/// One trainable tensor: layer, kind, name, shape, values, gradient.
type Entry = (
    &'static str,
    &'static str,
    &'static str,
    Shape,
    CpuBuffer,
    CpuBuffer,
);

/// Named tensors and their gradients on the CPU, and saved, untrained tensors.
pub struct Tensors {
    pub cpu: Cpu,
    pub entries: Vec<Entry>,
    pub state: Vec<(&'static str, &'static str, Shape, CpuBuffer)>,
}

/// A tensor of `values` with a zero gradient.
fn entry(
    cpu: &Cpu,
    (layer, kind, name): (&'static str, &'static str, &'static str),
    dims: &[usize],
    values: &[f32],
) -> Entry {
    (
        layer,
        kind,
        name,
        Shape::new(dims),
        cpu.alloc_from(values).unwrap(),
        cpu.alloc(values.len()).unwrap(),
    )
}

impl Tensors {
    /// `dense.weight` and `dense.bias`-style tensors with the given values, of layer
    /// kind `Tensor`.
    pub fn new(cpu: &Cpu, tensors: &[(&'static str, &'static str, &[usize], &[f32])]) -> Self {
        let entries = tensors
            .iter()
            .map(|(layer, name, dims, values)| entry(cpu, (layer, "Tensor", name), dims, values))
            .collect();
        Self {
            cpu: cpu.clone(),
            entries,
            state: Vec::new(),
        }
    }

    /// Tensors of the given layer kinds, tensor `k` holding `cos(0.23 i + k) / 2`.
    pub fn with_kinds(
        cpu: &Cpu,
        tensors: &[(&'static str, &'static str, &'static str, &[usize])],
    ) -> Self {
        let entries = tensors
            .iter()
            .enumerate()
            .map(|(k, (layer, kind, name, dims))| {
                let values: Vec<f32> = (0..dims.iter().product::<usize>())
                    .map(|i| ((0.23 * i as f64 + k as f64).cos() * 0.5) as f32)
                    .collect();
                entry(cpu, (layer, kind, name), dims, &values)
            })
            .collect();
        Self {
            cpu: cpu.clone(),
            entries,
            state: Vec::new(),
        }
    }

    /// Adds a saved, untrained tensor (a running statistic) with the given values.
    pub fn with_state(mut self, layer: &'static str, name: &'static str, values: &[f32]) -> Self {
        let buffer = self.cpu.alloc_from(values).unwrap();
        self.state
            .push((layer, name, Shape::new(&[values.len()]), buffer));
        self
    }

    /// Sets every gradient.
    pub fn set_grads(&mut self, grads: &[Vec<f32>]) {
        for (entry, g) in self.entries.iter_mut().zip(grads) {
            self.cpu.upload(g, &mut entry.5).unwrap();
        }
    }

    /// Sets every state tensor.
    pub fn set_state(&mut self, values: &[Vec<f32>]) {
        for (entry, v) in self.state.iter_mut().zip(values) {
            self.cpu.upload(v, &mut entry.3).unwrap();
        }
    }

    /// Every tensor's values.
    pub fn values(&self) -> Vec<Vec<f32>> {
        self.entries
            .iter()
            .map(|e| self.cpu.to_host(&e.4, e.3.size()).unwrap())
            .collect()
    }

    /// Every state tensor's values.
    pub fn state_values(&self) -> Vec<Vec<f32>> {
        self.state
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
        for (layer, kind, name, shape, value, grad) in &self.entries {
            f(ParamRef {
                layer,
                kind,
                name,
                shape: *shape,
                value,
                grad,
            })?;
        }
        Ok(())
    }

    fn visit_parameters<'a>(&'a mut self, f: VisitParams<'_, 'a, Cpu>) -> kiln_kernels::Result<()> {
        for (layer, kind, name, shape, value, grad) in &mut self.entries {
            f(ParamMut {
                layer,
                kind,
                name,
                shape: *shape,
                value,
                grad,
            })?;
        }
        Ok(())
    }

    fn state<'a>(&'a self, f: ViewState<'_, 'a, Cpu>) -> kiln_kernels::Result<()> {
        for (layer, name, shape, value) in &self.state {
            f(StateRef {
                layer,
                name,
                shape: *shape,
                value,
            })?;
        }
        Ok(())
    }

    fn visit_state<'a>(&'a mut self, f: VisitState<'_, 'a, Cpu>) -> kiln_kernels::Result<()> {
        for (layer, name, shape, value) in &mut self.state {
            f(StateMut {
                layer,
                name,
                shape: *shape,
                value,
            })?;
        }
        Ok(())
    }
}
