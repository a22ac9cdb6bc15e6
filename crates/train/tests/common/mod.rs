//! What several tests read from a model.

use kiln::prelude::*;

/// Tensors on the host, keyed `layer.name`.
pub type Tensors = Vec<(String, Vec<f32>)>;

/// Every trainable tensor of `model` (or, with `grads`, its gradient) on the host,
/// keyed `layer.name`, in the model's order.
pub fn host_tensors<M: Trainable<Cpu>>(model: &M, grads: bool) -> Tensors {
    let cpu = model.backend().clone();
    let mut out = Vec::new();
    model
        .parameters(&mut |p| {
            let buffer = if grads { p.grad } else { p.value };
            out.push((p.key(), cpu.to_host(buffer, p.shape.size())?));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("reading the tensors: {e}"));
    out
}
