//! A one-time warning when the kernels were compiled without optimisations: a debug
//! build of a program that depends on kiln trains tens of times slower than a release
//! build, and nothing else would say why.

/// The advice printed (to standard error, once a process) when a CPU backend is made
/// from unoptimised kernels.
pub const UNOPTIMISED_WARNING: &str = "kiln: warning: the CPU kernels were compiled without optimisations (a debug build), so training runs tens of times slower; build with `--release`, or give dependencies release speed in debug builds by adding to your Cargo.toml:\n\n[profile.dev.package.\"*\"]\nopt-level = 3\n";

/// Whether this build of the kernels is unoptimised (`opt-level = 0`).
pub const fn unoptimised() -> bool {
    cfg!(kiln_unoptimised)
}

/// Prints [`UNOPTIMISED_WARNING`] once a process, in an unoptimised build.
pub(crate) fn warn_if_unoptimised() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    if unoptimised() {
        ONCE.call_once(|| eprintln!("{UNOPTIMISED_WARNING}"));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_crates_tests_run_optimised_as_the_workspace_profile_asks() {
        // The workspace compiles kiln-kernels at opt-level 3 even in debug builds, so
        // the build script must not have seen opt-level 0 here (in a release build it
        // sees 3 as well).
        assert!(!super::unoptimised());
    }
}
