//! Support code shared by kiln's examples: their command-line arguments.

pub mod args;
