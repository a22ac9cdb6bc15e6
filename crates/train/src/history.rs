//! [`History`]: what `fit` returns, one [`EpochLog`] an epoch (Keras's
//! `History.history`).

/// The figures of one epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochLog {
    /// The epoch, from 0.
    pub epoch: usize,
    /// Named values in the order they were logged: `loss`, each metric, then
    /// `val_loss` and `val_` + each metric when there is validation data.
    pub values: Vec<(String, f64)>,
    /// The learning rate at the end of the epoch.
    pub learning_rate: f64,
    /// Wall-clock seconds of the epoch, validation included.
    pub seconds: f64,
}

impl EpochLog {
    /// The value logged as `name`, if any.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// Every epoch's figures, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// One entry an epoch.
    pub epochs: Vec<EpochLog>,
}

impl History {
    /// The names logged, in the order of the first epoch.
    pub fn names(&self) -> Vec<&str> {
        self.epochs
            .first()
            .map(|e| e.values.iter().map(|(n, _)| n.as_str()).collect())
            .unwrap_or_default()
    }

    /// The series of `name` over the epochs (NaN where an epoch lacks it).
    pub fn series(&self, name: &str) -> Vec<f64> {
        self.epochs
            .iter()
            .map(|e| e.get(name).unwrap_or(f64::NAN))
            .collect()
    }

    /// The last epoch's figures.
    pub fn last(&self) -> Option<&EpochLog> {
        self.epochs.last()
    }
}
