//! berth-init: the PID 1 that `berth run --init` puts in a container, doing what tini does by
//! default. `berth-init [--] CMD [ARG...]` runs CMD as its child in a process group of its own,
//! forwards every catchable signal it receives to that child, reaps every zombie (orphans are
//! re-parented to it), and exits with the child's status: its exit code, or 128+N when signal N
//! killed it. A CMD that cannot be executed exits 127 (not found) or 126 (any other failure).

use std::ffi::{CString, OsString};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::process::exit;

/// Signals that are left unblocked: the ones the kernel raises for a fault of this very process
/// (blocking them would hide a crash), plus job-control stops, which PID 1 ignores.
const NOT_FORWARDED: [libc::c_int; 9] = [
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGABRT,
    libc::SIGTRAP,
    libc::SIGSYS,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

/// Exit status for a command line berth-init cannot use (tini's).
const USAGE: i32 = 1;

fn main() {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == "--") {
        args.remove(0);
    }
    if args.is_empty() {
        eprintln!("berth-init: usage: berth-init [--] CMD [ARG...]");
        exit(USAGE);
    }
    let argv = match args.iter().map(|a| CString::new(a.as_bytes())).collect::<Result<Vec<_>, _>>() {
        Ok(argv) => argv,
        Err(_) => {
            eprintln!("berth-init: an argument contains a NUL byte");
            exit(USAGE);
        }
    };
    exit(run(&argv));
}

/// Everything PID 1 does, in order; returns the status to exit with.
fn run(argv: &[CString]) -> i32 {
    if let Err(e) = become_subreaper() {
        eprintln!("berth-init: cannot become a child subreaper: {e}");
        return USAGE;
    }
    let signals = match SignalSetup::block_forwarded() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("berth-init: cannot block signals: {e}");
            return USAGE;
        }
    };
    let child = match spawn(argv, &signals) {
        Ok(pid) => pid,
        Err(e) => {
            eprintln!("berth-init: fork failed: {e}");
            return USAGE;
        }
    };
    supervise(child, &signals.forwarded)
}

/// Outside a PID namespace of its own (PID 1 already reaps), orphans of the child must still come
/// to berth-init to be reaped.
fn become_subreaper() -> io::Result<()> {
    // SAFETY: getpid has no preconditions.
    if unsafe { libc::getpid() } == 1 {
        return Ok(());
    }
    // SAFETY: PR_SET_CHILD_SUBREAPER takes one integer argument and touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The signal state berth-init changed, kept to be undone in the child before it execs CMD.
struct SignalSetup {
    /// The signals berth-init waits for (all but `NOT_FORWARDED`): blocked, so they queue.
    forwarded: libc::sigset_t,
    /// The mask berth-init started with.
    original_mask: libc::sigset_t,
    /// SIGTTIN's and SIGTTOU's actions before berth-init ignored them.
    original_ttin: libc::sigaction,
    original_ttou: libc::sigaction,
}

impl SignalSetup {
    /// Blocks every signal berth-init forwards (a blocked signal is queued even for a PID 1,
    /// which the kernel would otherwise spare from signals it has no handler for), and ignores
    /// the job-control signals a PID 1 gets when it touches the terminal.
    fn block_forwarded() -> io::Result<SignalSetup> {
        // SAFETY: all-zero is a valid bit pattern for these plain C structs; each is filled in
        // by the calls below before it is read.
        let mut setup: SignalSetup = unsafe { std::mem::zeroed() };
        // SAFETY: the sets are valid, owned sigset_t values.
        unsafe {
            libc::sigfillset(&mut setup.forwarded);
            for sig in NOT_FORWARDED {
                libc::sigdelset(&mut setup.forwarded, sig);
            }
        }
        // SAFETY: both pointers are valid sigset_t values owned by `setup`.
        if unsafe { libc::sigprocmask(libc::SIG_SETMASK, &setup.forwarded, &mut setup.original_mask) } != 0 {
            return Err(io::Error::last_os_error());
        }
        for (sig, original) in [(libc::SIGTTIN, &mut setup.original_ttin), (libc::SIGTTOU, &mut setup.original_ttou)] {
            // SAFETY: all-zero is a valid sigaction; it is then set to SIG_IGN with an empty mask.
            let mut ignore: libc::sigaction = unsafe { std::mem::zeroed() };
            ignore.sa_sigaction = libc::SIG_IGN;
            // SAFETY: `ignore` and `original` are valid sigaction structs.
            if unsafe { libc::sigaction(sig, &ignore, original) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(setup)
    }

    /// Undoes `block_forwarded` (in the child, before exec); returns false if any call failed.
    fn restore(&self) -> bool {
        // SAFETY: the structs were filled in by block_forwarded and are only read here.
        unsafe {
            libc::sigaction(libc::SIGTTIN, &self.original_ttin, std::ptr::null_mut()) == 0
                && libc::sigaction(libc::SIGTTOU, &self.original_ttou, std::ptr::null_mut()) == 0
                && libc::sigprocmask(libc::SIG_SETMASK, &self.original_mask, std::ptr::null_mut()) == 0
        }
    }
}

/// Forks the child that execs CMD; returns its pid. As tini does, the child gets a process group
/// of its own and, when stdin is a terminal, that group becomes the terminal's foreground group.
fn spawn(argv: &[CString], signals: &SignalSetup) -> io::Result<libc::pid_t> {
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: berth-init is single-threaded, so the child may run any code after fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid > 0 {
        return Ok(pid);
    }
    // The child.
    // SAFETY: setpgid, isatty, tcsetpgrp and getpgrp take plain integers.
    let group_ok = unsafe {
        libc::setpgid(0, 0) == 0
            && (libc::isatty(libc::STDIN_FILENO) == 0 || libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpgrp()) == 0)
    };
    if !group_ok {
        let e = io::Error::last_os_error();
        let _ = writeln!(io::stderr(), "berth-init: cannot give the command its own process group: {e}");
        // SAFETY: _exit ends the forked child without running the parent's atexit handlers.
        unsafe { libc::_exit(USAGE) };
    }
    if !signals.restore() {
        let e = io::Error::last_os_error();
        let _ = writeln!(io::stderr(), "berth-init: cannot restore the signal mask: {e}");
        // SAFETY: as above.
        unsafe { libc::_exit(USAGE) };
    }
    // SAFETY: `ptrs` is a NULL-terminated array of pointers into `argv`'s live C strings.
    unsafe { libc::execvp(ptrs[0], ptrs.as_ptr()) };
    let e = io::Error::last_os_error();
    let _ = writeln!(io::stderr(), "berth-init: exec {} failed: {e}", argv[0].to_string_lossy());
    // SAFETY: as above.
    unsafe { libc::_exit(exec_failure_status(e.raw_os_error().unwrap_or(0))) }
}

/// The shell's convention for a command that could not run: 127 when it does not exist, 126
/// when it exists but cannot be executed.
fn exec_failure_status(errno: i32) -> i32 {
    match errno {
        libc::ENOENT | libc::ENOTDIR => 127,
        _ => 126,
    }
}

/// Waits for signals, forwarding each to the child, and reaps every zombie after each wakeup;
/// returns the child's status once it has been reaped.
fn supervise(child: libc::pid_t, forwarded: &libc::sigset_t) -> i32 {
    // Wake up now and then even without a SIGCHLD: a zombie may appear while its SIGCHLD is
    // coalesced with one already consumed.
    let timeout = libc::timespec { tv_sec: 1, tv_nsec: 0 };
    loop {
        // SAFETY: all-zero is a valid siginfo_t; sigtimedwait fills it in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: the set, info and timeout pointers are valid for the call.
        let sig = unsafe { libc::sigtimedwait(forwarded, &mut info, &timeout) };
        if sig > 0 && sig != libc::SIGCHLD {
            // SAFETY: kill takes plain integers; a child already gone is not an error to act on.
            unsafe { libc::kill(child, sig) };
        }
        if let Some(status) = reap_zombies(child) {
            return status;
        }
    }
}

/// Reaps every zombie there is; returns the child's exit status if the child was one of them.
fn reap_zombies(child: libc::pid_t) -> Option<i32> {
    let mut child_status = None;
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid int for waitpid to write.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            // 0: children remain, none is a zombie; -1 (ECHILD): no children are left.
            return child_status;
        }
        if pid == child {
            child_status = Some(exit_status(status));
        }
    }
}

/// The status berth-init exits with for a wait status of its child, as a shell reports it.
fn exit_status(wait_status: i32) -> i32 {
    if libc::WIFEXITED(wait_status) {
        libc::WEXITSTATUS(wait_status)
    } else if libc::WIFSIGNALED(wait_status) {
        128 + libc::WTERMSIG(wait_status)
    } else {
        USAGE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_and_signals_map_as_a_shell_reports_them() {
        assert_eq!(exit_status(3 << 8), 3);
        assert_eq!(exit_status(libc::SIGTERM), 128 + libc::SIGTERM);
        assert_eq!(exit_status(libc::SIGKILL | 0x80), 128 + libc::SIGKILL, "core dump flag ignored");
    }

    #[test]
    fn a_missing_command_is_127_and_an_unexecutable_one_126() {
        assert_eq!(exec_failure_status(libc::ENOENT), 127);
        assert_eq!(exec_failure_status(libc::EACCES), 126);
        assert_eq!(exec_failure_status(libc::ENOEXEC), 126);
    }
}
