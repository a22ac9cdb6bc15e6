//! The environment variables that configure the CPU backend, validated: a value kiln
//! cannot use is an error naming the variable and the value, never a silent default.

use crate::{Error, Result};

/// The variable that sets the number of CPU threads.
pub const THREADS_VAR: &str = "KILN_THREADS";

/// The variable that restricts the SGEMM's code paths, for comparisons.
pub const ISA_VAR: &str = "KILN_CPU_ISA";

/// The values `KILN_CPU_ISA` takes.
const ISAS: [&str; 3] = ["avx512", "avx2", "portable"];

/// The most threads a backend starts: 256, or the number of cores where there are
/// more. Each thread keeps its own packing buffers, so a mistyped count would
/// otherwise exhaust memory or the system's thread limit.
pub fn max_threads() -> usize {
    available().max(256)
}

/// The number of cores this process may use.
pub(crate) fn available() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// The thread count `KILN_THREADS` asks for, or `None` where it is unset or empty.
pub(crate) fn threads_from_env() -> Result<Option<usize>> {
    let value = std::env::var_os(THREADS_VAR).map(|v| v.to_string_lossy().into_owned());
    let (threads, warning) = threads_from(value.as_deref(), max_threads())?;
    if let Some(warning) = warning {
        eprintln!("warning: {warning}");
    }
    Ok(threads)
}

/// Parses a `KILN_THREADS` value: a whole number from 1 up; above `max` it is capped,
/// with a warning to show.
fn threads_from(value: Option<&str>, max: usize) -> Result<(Option<usize>, Option<String>)> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok((None, None));
    };
    let invalid = || Error::Environment {
        var: THREADS_VAR,
        value: value.to_string(),
        expected: format!("a whole number of threads from 1 to {max}"),
    };
    // A count too large for `usize` is still a count: cap it as any other.
    let threads = match value.parse::<usize>() {
        Ok(0) => return Err(invalid()),
        Ok(n) => n,
        Err(_) if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => usize::MAX,
        Err(_) => return Err(invalid()),
    };
    if threads > max {
        let warning =
            format!("{THREADS_VAR}={value} is more than the {max} threads kiln runs; using {max}");
        return Ok((Some(max), Some(warning)));
    }
    Ok((Some(threads), None))
}

/// Checks `KILN_CPU_ISA`: unset, empty, or one of the code paths it names.
pub(crate) fn check_isa() -> Result<()> {
    let value = std::env::var_os(ISA_VAR).map(|v| v.to_string_lossy().into_owned());
    check_isa_value(value.as_deref())
}

fn check_isa_value(value: Option<&str>) -> Result<()> {
    match value {
        None | Some("") => Ok(()),
        Some(v) if ISAS.contains(&v) => Ok(()),
        Some(v) => Err(Error::Environment {
            var: ISA_VAR,
            value: v.to_string(),
            expected: format!("one of {}", ISAS.join(", ")),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(value: &str) -> String {
        match threads_from(Some(value), 64) {
            Err(err) => err.to_string(),
            Ok(found) => panic!("{value:?} was accepted as {found:?}"),
        }
    }

    #[test]
    fn a_thread_count_that_is_not_a_positive_number_is_an_error_naming_it() {
        for value in ["0", "abc", "-1", "2.5", "1e3", "0x10"] {
            let msg = message(value);
            assert!(msg.contains("KILN_THREADS"), "{msg}");
            assert!(msg.contains(&format!("{value:?}")), "{msg}");
            assert!(msg.contains("from 1 to 64"), "{msg}");
        }
    }

    #[test]
    fn a_thread_count_above_the_maximum_is_capped_with_a_warning() {
        for value in ["65", "100000", "99999999999999999999999"] {
            let (threads, warning) = threads_from(Some(value), 64).unwrap();
            assert_eq!(threads, Some(64), "{value}");
            let warning = warning.unwrap();
            assert!(
                warning.contains(&format!("KILN_THREADS={value}")),
                "{warning}"
            );
            assert!(warning.contains("using 64"), "{warning}");
        }
    }

    #[test]
    fn a_valid_or_absent_thread_count_passes_without_a_warning() {
        assert_eq!(threads_from(None, 64).unwrap(), (None, None));
        assert_eq!(threads_from(Some(""), 64).unwrap(), (None, None));
        assert_eq!(threads_from(Some("1"), 64).unwrap(), (Some(1), None));
        assert_eq!(threads_from(Some(" 64 "), 64).unwrap(), (Some(64), None));
    }

    #[test]
    fn an_unknown_code_path_is_an_error_naming_the_choices() {
        for ok in [
            None,
            Some(""),
            Some("avx2"),
            Some("portable"),
            Some("avx512"),
        ] {
            check_isa_value(ok).unwrap();
        }
        let msg = check_isa_value(Some("sse")).unwrap_err().to_string();
        assert!(
            msg.contains("KILN_CPU_ISA") && msg.contains("\"sse\""),
            "{msg}"
        );
        assert!(msg.contains("avx512, avx2, portable"), "{msg}");
    }

    #[test]
    fn too_many_threads_is_an_error_not_a_panic() {
        let err = crate::Cpu::with_threads(usize::MAX).unwrap_err();
        assert!(
            matches!(
                err,
                Error::TooManyThreads {
                    threads: usize::MAX,
                    ..
                }
            ),
            "{err}"
        );
    }
}
