//! The shell the interop tests run in their busybox containers, the same under every engine so
//! that what one engine passes on can be compared with the others, and the checks of what a user
//! of the engine sees of it.

use super::berth::Gate;
use super::process::Outcome;

/// A foreground container's script: writes to stdout and stderr, waits at the gate (so the test
/// can look at the running container), then exits [`FOREGROUND_EXIT`].
pub fn foreground() -> String {
    format!("echo hello from berth; echo to stderr >&2; {}; exit {FOREGROUND_EXIT}", Gate::WAIT)
}

/// The exit code of [`foreground`].
pub const FOREGROUND_EXIT: i32 = 3;

/// Asserts that the engine's foreground `run` passed on the container's stdout, stderr (kept
/// apart) and exit code.
pub fn assert_foreground_outcome(out: &Outcome) {
    assert_eq!(out.code, FOREGROUND_EXIT, "the exit code was not passed on: {out}");
    assert_eq!(out.stdout.trim_end(), "hello from berth", "stdout: {out}");
    assert!(out.stderr.contains("to stderr"), "stderr: {out}");
    assert!(!out.stdout.contains("to stderr"), "stderr ended up on stdout: {out}");
}

/// A detached container's init: logs `started`, then runs until SIGTERM (what `stop` and a plain
/// `kill` send), on which it exits [`TERM_EXIT`]; a SIGKILL fallback would give 137 instead.
pub const DETACHED: &str = "trap 'exit 7' TERM; echo started; while :; do sleep 0.1; done";

/// What [`DETACHED`] logs.
pub const DETACHED_LOG: &str = "started";

/// The exit code of [`DETACHED`] on SIGTERM.
pub const TERM_EXIT: i32 = 7;

/// A process to exec into a running container: prints the command line of the container's pid 1
/// (proof that it joined the container's pid namespace) and a line on stderr, exits [`EXEC_EXIT`].
pub const EXEC_PROBE: &str = "echo \"exec sees init: $(tr '\\0' ' ' </proc/1/cmdline)\"; echo exec stderr >&2; exit 5";

/// The exit code of [`EXEC_PROBE`].
pub const EXEC_EXIT: i32 = 5;

/// Asserts that the engine's exec passed on [`EXEC_PROBE`]'s output and exit code, run in a
/// container whose init is `sh -c <init_script>`.
pub fn assert_exec_outcome(out: &Outcome, init_script: &str) {
    assert_eq!(out.code, EXEC_EXIT, "the exec's exit code was not passed on: {out}");
    assert_eq!(out.stdout.trim_end(), format!("exec sees init: sh -c {init_script}"), "{out}");
    assert!(out.stderr.contains("exec stderr"), "{out}");
}
