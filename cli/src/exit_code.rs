//! docker's exit statuses for the commands that run a container's process (`run`, `create`,
//! `start`, `exec`): the process's own status, else 125/126/127 for why it could not run.

/// berth itself failed: bad flag, daemon unreachable, unknown image, name in use, ….
pub const BERTH_FAILED: u8 = 125;
/// The command exists but cannot be invoked.
pub const CANNOT_INVOKE: u8 = 126;
/// The command was not found.
pub const COMMAND_NOT_FOUND: u8 = 127;

/// Marks an error from before the container's process was started (Containers.Create): never
/// about the command, so 125 whatever its message says (a missing bind source or device).
#[derive(Debug)]
pub struct BeforeStart;

impl std::fmt::Display for BeforeStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("creating the container")
    }
}

/// The status of a container's process (docker exits with its low 8 bits).
pub fn of_process(code: i32) -> u8 {
    code as u8
}

/// The status for `err` from `run`/`create`/`start`/`exec`. Only berthd's messages about
/// starting a process speak about the container's command (berthd words them as docker does);
/// the client's own errors (a missing `--env-file`, no socket) and Create's are 125.
/// A failure already shown to the user that ends the command with this exit code (a failed
/// build step exits with its command's code, as docker's build does).
#[derive(Debug)]
pub struct Reported(pub u8);

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Reported {}

pub fn of_error(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<BeforeStart>().is_some() {
        return BERTH_FAILED;
    }
    let Some(ttrpc::Error::RpcStatus(status)) = err.downcast_ref::<ttrpc::Error>() else {
        return BERTH_FAILED;
    };
    let message = status.message.to_ascii_lowercase();
    if message.contains("executable file not found") || message.contains("no such file or directory") {
        COMMAND_NOT_FOUND
    } else if message.contains("permission denied") || message.contains("is a directory") {
        CANNOT_INVOKE
    } else {
        BERTH_FAILED
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ttrpc::Code;

    fn status(code: Code, message: &str) -> anyhow::Error {
        ttrpc::Error::RpcStatus(ttrpc::get_status(code, message)).into()
    }

    #[test]
    fn missing_commands_are_127_and_uninvokable_ones_126() {
        let not_found = status(Code::NOT_FOUND, "exec: \"nope\": executable file not found in $PATH");
        assert_eq!(of_error(&not_found), 127);
        assert_eq!(of_error(&status(Code::UNKNOWN, "exec /bin/x: no such file or directory")), 127);
        assert_eq!(of_error(&status(Code::UNKNOWN, "exec /etc: is a directory")), 126);
        assert_eq!(of_error(&status(Code::UNKNOWN, "exec /etc/passwd: permission denied")), 126);
    }

    #[test]
    fn berths_own_failures_are_125() {
        assert_eq!(of_error(&status(Code::NOT_FOUND, "No such image: nope")), 125);
        assert_eq!(of_error(&status(Code::ALREADY_EXISTS, "the name \"x\" is already in use")), 125);
        assert_eq!(of_error(&anyhow::anyhow!("open env.list: no such file or directory")), 125);
        let at_create =
            status(Code::INVALID_ARGUMENT, "bind source /nope: no such file or directory").context(BeforeStart);
        assert_eq!(of_error(&at_create), 125);
        // The context leaves berthd's message as what the user reads.
        assert_eq!(
            crate::daemon::describe(&at_create).as_deref(),
            Some("Error response from daemon: bind source /nope: no such file or directory")
        );
    }

    #[test]
    fn process_status_keeps_its_low_byte() {
        assert_eq!(of_process(0), 0);
        assert_eq!(of_process(3), 3);
        assert_eq!(of_process(137), 137);
        assert_eq!(of_process(256), 0);
        assert_eq!(of_process(-1), 255);
    }
}
