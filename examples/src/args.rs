//! The command-line arguments every example takes: `--epochs`, `--batch-size`,
//! `--seed` and, where it reads files, `--data DIR`.

use std::path::{Path, PathBuf};

/// The folder of data files that ships with the examples (`examples/data`), found
/// from the package's own directory so that any working directory will do.
pub fn default_data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}

/// Parsed arguments, starting from an example's defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Args {
    /// Epochs to train.
    pub epochs: usize,
    /// Samples per batch.
    pub batch_size: usize,
    /// The seed of initialisation, shuffling and augmentation.
    pub seed: u64,
    /// A folder of data files, when given.
    pub data: Option<PathBuf>,
    /// Where to train (`--device cpu|cuda`).
    pub device: Device,
}

/// The device an example trains on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Device {
    /// The CPU backend (every core).
    #[default]
    Cpu,
    /// The first CUDA GPU (a build with `--features cuda`).
    Cuda,
}

impl Args {
    /// Reads the process's arguments over `defaults`; an unknown flag or a bad value
    /// is an error that lists what is accepted.
    pub fn parse(defaults: Args) -> Result<Args, String> {
        Self::parse_from(defaults, std::env::args().skip(1))
    }

    /// [`Args::parse`] for an example that trains on the CPU only: `--device cuda` is an
    /// error that names the examples that take it.
    pub fn parse_cpu_only(defaults: Args) -> Result<Args, String> {
        let args = Self::parse(defaults)?;
        if args.device != Device::Cpu {
            return Err(
                "this example trains on the CPU; quickstart and cifar10_cnn take --device cuda"
                    .into(),
            );
        }
        Ok(args)
    }

    /// Reads `args` over `defaults`.
    pub fn parse_from(
        defaults: Args,
        args: impl IntoIterator<Item = String>,
    ) -> Result<Args, String> {
        let mut out = defaults;
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--epochs" => {
                    out.epochs = value()?.parse().map_err(|e| format!("--epochs: {e}"))?
                }
                "--batch-size" => {
                    out.batch_size = value()?.parse().map_err(|e| format!("--batch-size: {e}"))?;
                }
                "--seed" => out.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
                "--data" => out.data = Some(PathBuf::from(value()?)),
                "--device" => {
                    out.device = match value()?.as_str() {
                        "cpu" => Device::Cpu,
                        "cuda" => Device::Cuda,
                        other => return Err(format!("--device: `{other}` is not cpu or cuda")),
                    }
                }
                other => {
                    return Err(format!(
                        "unknown argument `{other}`; expected --epochs N, --batch-size N, --seed N, --data DIR or --device cpu|cuda"
                    ));
                }
            }
        }
        if out.epochs == 0 || out.batch_size == 0 {
            return Err("--epochs and --batch-size must be at least 1".into());
        }
        Ok(out)
    }

    /// The folder given with `--data`, else [`default_data_dir`].
    pub fn data_dir(&self) -> PathBuf {
        self.data.clone().unwrap_or_else(default_data_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Args {
        Args {
            epochs: 5,
            batch_size: 64,
            seed: 1,
            data: None,
            device: Device::Cpu,
        }
    }

    #[test]
    fn flags_override_defaults_and_bad_ones_are_named() {
        let args = ["--epochs", "2", "--data", "/tmp/x", "--seed", "9"].map(String::from);
        let parsed = Args::parse_from(defaults(), args).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(parsed.epochs, 2);
        assert_eq!(parsed.seed, 9);
        assert_eq!(parsed.data, Some(PathBuf::from("/tmp/x")));
        let err = Args::parse_from(defaults(), ["--lr".to_string()]).err();
        assert!(err.is_some_and(|e| e.contains("--lr")));
        let err = Args::parse_from(defaults(), ["--epochs".to_string(), "0".into()]).err();
        assert!(err.is_some());
    }
}
