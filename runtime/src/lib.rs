//! berth-runtime: an OCI runtime library with a runc-compatible command line on top.
//!
//! The library owns the container lifecycle (`container::*`, one file per operation) and the
//! kernel-facing concerns it is built from (namespaces, rootfs, cgroups, capabilities, hooks,
//! console). The binary in `main.rs` only parses arguments, logs and maps errors to exit codes.

pub mod capabilities;
pub mod cgroups;
pub mod clone_binary;
pub mod console;
pub mod container;
pub mod copy_tree;
pub mod cpu_affinity;
pub mod features;
pub mod hooks;
pub mod init;
pub mod io_priority;
pub mod logging;
pub mod mempolicy;
pub mod mount_options;
pub mod namespaces;
pub mod personality;
pub mod rootfs;
pub mod safe_path;
pub mod scheduler;
pub mod seccomp;
pub mod signal;
pub mod spec;
pub mod state;
pub mod sync;
pub mod sysctl;
