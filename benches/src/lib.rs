//! Benchmarks of kiln live in `benches/`; this library is empty.
