//! Support code shared by kiln's examples: their command-line arguments, the
//! recipes of the table examples (data, preprocessing, model), and what they report.

pub mod args;
pub mod auto_mpg;
pub mod breast_cancer;
pub mod cleaned;
pub mod device;
pub mod diabetes;
pub mod digits;
pub mod language;
pub mod penguins;
pub mod report;

/// Runs an example's body; an error is printed as its message (not its debug form)
/// and the process fails.
pub fn main_with(
    body: impl FnOnce() -> Result<(), Box<dyn std::error::Error>>,
) -> std::process::ExitCode {
    match body() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
