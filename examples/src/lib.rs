//! Support code shared by kiln's examples: their command-line arguments, the
//! recipes of the table examples (data, preprocessing, model), and what they report.

pub mod args;
pub mod breast_cancer;
pub mod diabetes;
pub mod report;
