//! Benchmarks live in bench/*.sh; `src/bin/default-seccomp-profile.rs` is a helper they run.
