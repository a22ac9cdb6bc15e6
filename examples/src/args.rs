//! The command lines of the examples, parsed by clap: `--epochs`, `--batch-size`,
//! `--seed`, `--data DIR` and, for the examples that train on a GPU, `--device`, with
//! each example's own defaults shown by `--help`; an example adds its own flags as a
//! `clap::Args` struct ([`Args::parse_with`]).

use std::path::{Path, PathBuf};

use clap::{Arg, ArgMatches, CommandFactory, FromArgMatches, Parser};

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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Device {
    /// The CPU backend (every core).
    #[default]
    Cpu,
    /// The first CUDA GPU (a build with `--features cuda`).
    Cuda,
}

// The flags every example takes; `--device` is hidden (and refused) where an example
// trains on the CPU only. (A comment, not a doc comment: clap would show it as the
// example's description.)
#[derive(Parser, Debug)]
struct Common<E: clap::Args> {
    /// Epochs to train.
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    epochs: usize,
    /// Samples per batch.
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    batch_size: usize,
    /// The seed of initialisation, shuffling and augmentation.
    #[arg(long, value_name = "N")]
    seed: u64,
    /// A folder with the data files (default: the example's own, or a verified
    /// download).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Where to train (`cuda` needs a build with `--features cuda`).
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    device: Device,
    #[command(flatten)]
    extra: E,
}

/// No flags of an example's own.
#[derive(clap::Args, Debug)]
pub struct NoExtra {}

/// `arg`, optional, with the example's default (shown by `--help`).
fn with_default(arg: Arg, value: impl ToString) -> Arg {
    arg.required(false).default_value(value.to_string())
}

fn at_least_one(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{value}` is not a whole number of at least 1")),
    }
}

impl Args {
    /// Reads the process's arguments over `defaults`; `--help` prints the flags and
    /// their defaults, and an unknown flag or a bad value is an error that says what
    /// is accepted.
    pub fn parse(defaults: Args) -> Result<Args, String> {
        Self::parse_with::<NoExtra>(defaults, true).map(|(args, _)| args)
    }

    /// [`Args::parse`] for an example that makes its own data: it offers no `--data`.
    pub fn parse_without_data(defaults: Args) -> Result<Args, String> {
        Self::parse_from_flags::<NoExtra>(defaults, true, false, std::env::args())
            .map(|(args, _)| args)
    }

    /// [`Args::parse`] for an example that trains on the CPU only: it offers no
    /// `--device`, and `--device cuda` is an error that names the examples that take it.
    pub fn parse_cpu_only(defaults: Args) -> Result<Args, String> {
        Self::parse_with::<NoExtra>(defaults, false).map(|(args, _)| args)
    }

    /// [`Args::parse`] with an example's own flags `E` (a `clap::Args` struct, its
    /// defaults in its attributes); `gpu` says whether the example takes `--device`.
    pub fn parse_with<E: clap::Args>(defaults: Args, gpu: bool) -> Result<(Args, E), String> {
        Self::parse_from_flags(defaults, gpu, true, std::env::args())
    }

    /// [`Args::parse`] from `args` (the program's name first).
    pub fn parse_from(
        defaults: Args,
        args: impl IntoIterator<Item = String>,
    ) -> Result<Args, String> {
        let args = std::iter::once("example".to_string()).chain(args);
        Self::parse_from_flags::<NoExtra>(defaults, true, true, args).map(|(args, _)| args)
    }

    /// The parser itself: `gpu` and `data` say whether `--device` and `--data` are
    /// offered (otherwise they are hidden, and refused when given).
    fn parse_from_flags<E: clap::Args>(
        defaults: Args,
        gpu: bool,
        data: bool,
        args: impl IntoIterator<Item = String>,
    ) -> Result<(Args, E), String> {
        let mut args = args.into_iter().peekable();
        let name = args
            .peek()
            .and_then(|p| Path::new(p).file_stem())
            .map_or("example".to_string(), |s| s.to_string_lossy().into_owned());
        let command = Common::<E>::command()
            .name(name)
            .about(None::<&str>)
            .mut_arg("epochs", |a| with_default(a, defaults.epochs))
            .mut_arg("batch_size", |a| with_default(a, defaults.batch_size))
            .mut_arg("seed", |a| with_default(a, defaults.seed))
            .mut_arg("device", |a: Arg| a.hide(!gpu))
            .mut_arg("data", |a: Arg| a.hide(!data));
        let matches: ArgMatches = match command.try_get_matches_from(args) {
            Ok(matches) => matches,
            // `--help` and `--version` print and end the process, as users expect.
            Err(e) if !e.use_stderr() => e.exit(),
            Err(e) => {
                let message = e.render().to_string();
                let message = message.strip_prefix("error: ").unwrap_or(&message);
                return Err(message.trim_end().to_string());
            }
        };
        let common = Common::<E>::from_arg_matches(&matches).map_err(|e| e.to_string())?;
        if !gpu && common.device != Device::Cpu {
            return Err(
                "this example trains on the CPU; quickstart, cifar10_cnn and cifar10_resnet take --device cuda"
                    .into(),
            );
        }
        if !data && common.data.is_some() {
            return Err("this example makes its own data and reads no --data".into());
        }
        let args = Args {
            epochs: common.epochs,
            batch_size: common.batch_size,
            seed: common.seed,
            data: common.data.or(defaults.data),
            device: common.device,
        };
        Ok((args, common.extra))
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

    #[derive(clap::Args, Debug)]
    struct Width {
        /// Channels of the first layer.
        #[arg(long, default_value_t = 16)]
        width: usize,
    }

    fn argv(args: &[&str]) -> Vec<String> {
        std::iter::once("quickstart")
            .chain(args.iter().copied())
            .map(String::from)
            .collect()
    }

    #[test]
    fn flags_override_defaults_and_bad_ones_are_named() {
        let args = ["--epochs", "2", "--data", "/tmp/x", "--seed", "9"].map(String::from);
        let parsed = Args::parse_from(defaults(), args).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((parsed.epochs, parsed.batch_size, parsed.seed), (2, 64, 9));
        assert_eq!(parsed.data, Some(PathBuf::from("/tmp/x")));
        let err = Args::parse_from(defaults(), ["--lr".to_string()]).err();
        assert!(err.is_some_and(|e| e.contains("--lr")));
        let err = Args::parse_from(defaults(), ["--epochs".to_string(), "0".into()]).err();
        assert!(err.is_some_and(|e| e.contains("at least 1")));
    }

    #[test]
    fn an_examples_own_flags_and_the_cpu_only_refusal() {
        let (args, width) =
            Args::parse_from_flags::<Width>(defaults(), true, true, argv(&["--width", "32"]))
                .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((args.epochs, width.width), (5, 32));
        let (_, width) = Args::parse_from_flags::<Width>(defaults(), true, true, argv(&[]))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(width.width, 16);
        let err =
            Args::parse_from_flags::<NoExtra>(defaults(), false, true, argv(&["--device", "cuda"]));
        assert!(err.is_err_and(|e| e.contains("trains on the CPU")));
        let err =
            Args::parse_from_flags::<NoExtra>(defaults(), true, false, argv(&["--data", "x"]));
        assert!(err.is_err_and(|e| e.contains("reads no --data")));
    }

    #[test]
    fn help_lists_the_flags_with_the_examples_defaults() {
        let help = Common::<Width>::command()
            .mut_arg("epochs", |a| with_default(a, 7))
            .mut_arg("device", |a: Arg| a.hide(true))
            .render_long_help()
            .to_string();
        assert!(
            help.contains("--epochs <N>") && help.contains("[default: 7]"),
            "{help}"
        );
        assert!(
            help.contains("--width") && !help.contains("--device"),
            "{help}"
        );
    }
}
