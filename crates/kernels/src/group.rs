//! Gathering operands for the ops that take several tensors at once
//! ([`Storage::fill_many`](crate::Storage::fill_many),
//! [`ReduceKernel::check_finite_many`](crate::ops::reduce::ReduceKernel::check_finite_many),
//! [`OptimizerKernel::optimizer_step_many`](crate::ops::optimizer::OptimizerKernel::optimizer_step_many))
//! inside a training step, without allocating.

/// What a [`Group`] hands on: its items, in the order they came.
pub type Drain<'g, T> =
    std::iter::FilterMap<std::slice::IterMut<'g, Option<T>>, fn(&mut Option<T>) -> Option<T>>;

/// Up to `N` items held in a fixed array and handed on together once it is full (or
/// when asked): how a model's tensors, which a visit lends one at a time, reach an op
/// that takes several.
#[derive(Debug)]
pub struct Group<T, const N: usize> {
    items: [Option<T>; N],
    len: usize,
}

impl<T, const N: usize> Default for Group<T, N> {
    fn default() -> Self {
        Self {
            items: std::array::from_fn(|_| None),
            len: 0,
        }
    }
}

impl<T, const N: usize> Group<T, N> {
    /// Adds `item`; when that fills the group, hands it to `flush` and empties it.
    pub fn push<E>(
        &mut self,
        item: T,
        flush: impl FnOnce(Drain<'_, T>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.items[self.len] = Some(item);
        self.len += 1;
        if self.len == N {
            self.flush(flush)
        } else {
            Ok(())
        }
    }

    /// Hands the items held to `flush` (none if empty) and empties the group.
    pub fn flush<E>(&mut self, flush: impl FnOnce(Drain<'_, T>) -> Result<(), E>) -> Result<(), E> {
        let len = std::mem::take(&mut self.len);
        let take: fn(&mut Option<T>) -> Option<T> = Option::take;
        flush(self.items[..len].iter_mut().filter_map(take))
    }
}

#[cfg(test)]
mod tests {
    use super::Group;

    #[test]
    fn hands_on_full_groups_then_the_rest_in_order() {
        let mut seen: Vec<Vec<u32>> = Vec::new();
        let mut group = Group::<u32, 3>::default();
        for i in 0..7 {
            group
                .push(i, |g| {
                    seen.push(g.collect());
                    Ok::<(), ()>(())
                })
                .unwrap();
        }
        group
            .flush(|g| {
                seen.push(g.collect());
                Ok::<(), ()>(())
            })
            .unwrap();
        group
            .flush(|g| {
                seen.push(g.collect());
                Ok::<(), ()>(())
            })
            .unwrap();
        assert_eq!(seen, [vec![0, 1, 2], vec![3, 4, 5], vec![6], vec![]]);
    }
}
