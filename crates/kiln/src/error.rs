//! One error type for a program that uses kiln: every crate's error converts into it,
//! so that `?` works across data, model, loss, optimizer, training, checkpoint and
//! export calls in one function.

use std::fmt;

/// Any error a kiln call returns, by the crate that raised it.
///
/// Its message is the message of the error it holds, unchanged, and so is its
/// [`source`](std::error::Error::source); match on the variant to reach the crate's
/// own error and its fields.
///
/// ```
/// use kiln::prelude::*;
///
/// kiln::model! {
///     pub struct Net { input: [4], hidden: Dense(8, relu), out: Dense(3, softmax) }
/// }
///
/// // Data, backend and model calls in one function, each error converted by `?`.
/// fn load_and_build(path: &str) -> kiln::Result<(usize, Net)> {
///     let table = kiln::data::csv::load(path.as_ref(), &Default::default())?;
///     let model = Net::new(&Cpu::new()?, 64, 1)?;
///     Ok((table.len(), model))
/// }
///
/// let Err(err) = load_and_build("no/such/table.csv") else { panic!("no such table") };
/// assert!(matches!(err, kiln::Error::Data(_)));
/// assert!(err.to_string().contains("no/such/table.csv"), "{err}");
/// ```
#[non_exhaustive]
pub enum Error {
    /// Loading, checking or preparing data (`kiln::data`).
    Data(kiln_data::Error),
    /// Building or running a model (`kiln::nn`).
    Model(kiln_nn::Error),
    /// A backend op, a tensor or a device (`kiln::kernels`).
    Backend(kiln_kernels::Error),
    /// A loss (`kiln::losses`).
    Loss(kiln_losses::Error),
    /// An optimizer or a schedule (`kiln::optim`).
    Optimizer(kiln_optim::Error),
    /// Training, evaluation, callbacks and checkpoints (`kiln::train`).
    Training(kiln_train::Error),
    /// ONNX export (`kiln::onnx`).
    Export(kiln_onnx::Error),
    /// Processes training together (`kiln::distributed`).
    Distributed(kiln_distributed::Error),
    /// A file of the program's own.
    Io(std::io::Error),
}

/// `Result` with kiln's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.inner(), f)
    }
}

/// The message, so that `fn main() -> kiln::Result<()>` prints what went wrong as a
/// sentence; `{:#?}` shows the structure.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            let (variant, inner) = self.parts();
            f.debug_tuple(variant).field(inner).finish()
        } else {
            fmt::Display::fmt(self.inner(), f)
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner().source()
    }
}

/// The variants' one list: the conversions from each crate's error, and the access to
/// the error a variant holds.
macro_rules! crate_errors {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        $(impl From<$ty> for Error {
            fn from(e: $ty) -> Self {
                Self::$variant(e)
            }
        })*

        impl Error {
            /// The error of the crate that raised it.
            pub fn inner(&self) -> &(dyn std::error::Error + 'static) {
                match self {
                    $(Self::$variant(e) => e,)*
                }
            }

            /// The variant's name and the error it holds, for `{:#?}`.
            fn parts(&self) -> (&'static str, &dyn fmt::Debug) {
                match self {
                    $(Self::$variant(e) => (stringify!($variant), e),)*
                }
            }
        }
    };
}

crate_errors!(
    Data(kiln_data::Error),
    Model(kiln_nn::Error),
    Backend(kiln_kernels::Error),
    Loss(kiln_losses::Error),
    Optimizer(kiln_optim::Error),
    Training(kiln_train::Error),
    Export(kiln_onnx::Error),
    Distributed(kiln_distributed::Error),
    Io(std::io::Error),
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_sources_are_the_crates_own() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "table.csv is missing");
        let err: Error = io.into();
        assert_eq!(err.to_string(), "table.csv is missing");
        assert_eq!(format!("{err:?}"), "table.csv is missing");
        assert!(format!("{err:#?}").starts_with("Io("));
        let shape = kiln_nn::Error::CannotAccumulate { layer: "Dense" };
        let message = shape.to_string();
        let err: Error = shape.into();
        assert_eq!(err.to_string(), message);
        assert!(matches!(err, Error::Model(_)));
    }
}
