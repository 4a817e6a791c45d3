//! Benchmarks live in bench/*.sh.
