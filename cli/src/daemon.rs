//! Reaching berthd: its address (`-H`, else `$BERTH_HOST`, else the default socket), a ttrpc
//! connection with one client per service, and how its failures read to a user.

use std::fmt;
use std::io::{self, Write};
use std::os::fd::IntoRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};

use anyhow::{bail, Result};
use berth_proto::build_ttrpc::BuilderClient;
use berth_proto::containers_ttrpc::ContainersClient;
use berth_proto::images_ttrpc::{ImagesClient, TransferClient};
use berth_proto::networks_ttrpc::NetworksClient;
use berth_proto::system_ttrpc::{EventsClient, SystemClient};
use berth_proto::tasks_ttrpc::TasksClient;
use berth_proto::version_ttrpc::VersionClient;
use berth_proto::volumes_ttrpc::VolumesClient;
use ttrpc::context::Context;
use ttrpc::r#async::Client;
use ttrpc::Code;

/// Where berthd listens unless told otherwise.
pub const DEFAULT_HOST: &str = "unix:///run/berth/berthd.sock";
/// The environment variable that overrides [`DEFAULT_HOST`], as `DOCKER_HOST` does docker's.
pub const HOST_ENV: &str = "BERTH_HOST";

/// The daemon address: the `-H` flag, else the environment's, else [`DEFAULT_HOST`]. Empty values
/// count as unset, as docker's do.
pub fn select_host(flag: Option<&str>, env: Option<&str>) -> String {
    [flag, env].into_iter().flatten().find(|a| !a.is_empty()).unwrap_or(DEFAULT_HOST).to_string()
}

/// berthd is not there: no socket, nobody listening, or no permission.
#[derive(Debug)]
pub struct ConnectError {
    pub address: String,
    pub source: io::Error,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot connect to berthd at {}: {}; is berthd running? (start it with: berthd &)",
            self.address,
            strip_os_error_suffix(&self.source.to_string())
        )
    }
}

impl std::error::Error for ConnectError {}

/// `No such file or directory (os error 2)` reads `No such file or directory`.
fn strip_os_error_suffix(message: &str) -> &str {
    match message.rfind(" (os error ") {
        Some(i) if message.ends_with(')') => &message[..i],
        _ => message,
    }
}

/// An image argument berthd (or the ID lookup) does not know.
#[derive(Debug)]
pub struct NoSuchImage(pub String);

impl fmt::Display for NoSuchImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "No such image: {}", self.0)
    }
}

impl std::error::Error for NoSuchImage {}

/// Something docker has that berth does not have yet; reads `berth: <what>`.
#[derive(Debug)]
pub struct NotSupportedYet(pub String);

impl fmt::Display for NotSupportedYet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotSupportedYet {}

/// A verb berth does not have (yet).
#[derive(Debug)]
pub struct UnknownCommand(pub String);

impl fmt::Display for UnknownCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}' is not a berth command yet.\nSee 'berth --help'", self.0)
    }
}

impl std::error::Error for UnknownCommand {}

/// A command that already printed why it failed and only needs exit status 1.
#[derive(Debug)]
pub struct AlreadyReported;

impl fmt::Display for AlreadyReported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("failed")
    }
}

impl std::error::Error for AlreadyReported {}

/// A message printed as it is, without "Error: " (docker's client prints its own errors bare).
#[derive(Debug)]
pub struct PlainMessage(pub String);

impl fmt::Display for PlainMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlainMessage {}

/// A connection to berthd.
pub struct Berthd {
    client: Client,
}

impl Berthd {
    /// Connects to `address` (`unix:///path`, `unix://@abstract`, or a bare `/path`). Must run
    /// inside the tokio runtime: the ttrpc client spawns its connection task there.
    pub fn connect(address: &str) -> Result<Berthd> {
        let stream = match socket_target(address)? {
            SocketTarget::Path(path) => UnixStream::connect(path),
            SocketTarget::Abstract(name) => {
                SocketAddr::from_abstract_name(name).and_then(|a| UnixStream::connect_addr(&a))
            }
        };
        let stream = stream.map_err(|source| ConnectError { address: address.to_string(), source })?;
        // ttrpc takes ownership of the descriptor (and makes it non-blocking).
        Ok(Berthd { client: Client::new(stream.into_raw_fd()) })
    }

    /// The Images service.
    pub fn images(&self) -> ImagesClient {
        ImagesClient::new(self.client.clone())
    }

    /// The Transfer service: pull, push, import, export.
    pub fn transfer(&self) -> TransferClient {
        TransferClient::new(self.client.clone())
    }

    /// The System service: disk usage and garbage collection.
    pub fn system(&self) -> SystemClient {
        SystemClient::new(self.client.clone())
    }

    /// The Events service.
    pub fn events(&self) -> EventsClient {
        EventsClient::new(self.client.clone())
    }

    /// The Containers service: container records.
    pub fn containers(&self) -> ContainersClient {
        ContainersClient::new(self.client.clone())
    }

    /// The Tasks service: containers' processes, stdio, logs and execs.
    pub fn tasks(&self) -> TasksClient {
        TasksClient::new(self.client.clone())
    }

    /// The Networks service.
    pub fn networks(&self) -> NetworksClient {
        NetworksClient::new(self.client.clone())
    }

    /// The Version service.
    pub fn version(&self) -> VersionClient {
        VersionClient::new(self.client.clone())
    }

    /// The Builder service: commit, diff, import, build.
    pub fn builder(&self) -> BuilderClient {
        BuilderClient::new(self.client.clone())
    }

    /// The Volumes service.
    pub fn volumes(&self) -> VolumesClient {
        VolumesClient::new(self.client.clone())
    }
}

/// The context of every call: no deadline (pulls and garbage collection take what they take;
/// Ctrl-C ends the client).
pub fn ctx() -> Context {
    Context::default()
}

enum SocketTarget<'a> {
    Path(&'a str),
    Abstract(&'a [u8]),
}

fn socket_target(address: &str) -> Result<SocketTarget<'_>> {
    let target = match address.strip_prefix("unix://") {
        Some(rest) => rest,
        None if address.starts_with('/') => address,
        None => bail!("invalid host address {address:?}: berthd listens on a unix socket (unix:///path/berthd.sock)"),
    };
    match target.strip_prefix('@') {
        Some(name) if !name.is_empty() => Ok(SocketTarget::Abstract(name.as_bytes())),
        _ if target.starts_with('/') => Ok(SocketTarget::Path(target)),
        _ => bail!("invalid host address {address:?}: expected an absolute socket path (unix:///path/berthd.sock)"),
    }
}

/// Turns berthd's NOT_FOUND about `name` into [`NoSuchImage`]; other errors pass through.
pub fn not_found_as_no_such_image(err: ttrpc::Error, name: &str) -> anyhow::Error {
    match &err {
        ttrpc::Error::RpcStatus(status) if status.code() == Code::NOT_FOUND => NoSuchImage(name.to_string()).into(),
        _ => err.into(),
    }
}

/// The line a failed command prints on stderr, or `None` when nothing should be printed.
pub fn describe(err: &anyhow::Error) -> Option<String> {
    if err.downcast_ref::<AlreadyReported>().is_some() {
        return None;
    }
    if let Some(io_err) = err.downcast_ref::<io::Error>() {
        // `berth images | head -1`: the reader left; nothing is wrong.
        if io_err.kind() == io::ErrorKind::BrokenPipe {
            return None;
        }
    }
    if let Some(connect) = err.downcast_ref::<ConnectError>() {
        return Some(format!("berth: {connect}"));
    }
    if let Some(unsupported) = err.downcast_ref::<NotSupportedYet>() {
        return Some(format!("berth: {unsupported}"));
    }
    if let Some(unknown) = err.downcast_ref::<UnknownCommand>() {
        return Some(format!("berth: {unknown}"));
    }
    if let Some(plain) = err.downcast_ref::<PlainMessage>() {
        return Some(plain.0.clone());
    }
    if let Some(missing) = err.downcast_ref::<NoSuchImage>() {
        return Some(format!("Error: {missing}"));
    }
    match err.downcast_ref::<ttrpc::Error>() {
        Some(ttrpc::Error::RpcStatus(status)) => Some(format!("Error response from daemon: {}", status.message)),
        Some(transport) => Some(format!("Error: lost connection to berthd: {transport}")),
        None => Some(format!("Error: {err:#}")),
    }
}

/// Prints [`describe`]'s line for `err` on stderr, if any.
pub fn print_error(err: &anyhow::Error) {
    if let Some(line) = describe(err) {
        // Nothing is left to tell anyone if stderr itself fails.
        let _ = writeln!(io::stderr(), "{line}");
    }
}

/// Whether `err` should end the process quietly with success (a closed stdout pipe).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_flag_wins_over_environment_and_default() {
        assert_eq!(select_host(Some("unix:///a.sock"), Some("unix:///b.sock")), "unix:///a.sock");
    }

    #[test]
    fn environment_wins_over_default() {
        assert_eq!(select_host(None, Some("unix:///b.sock")), "unix:///b.sock");
    }

    #[test]
    fn default_socket_when_neither_is_set_or_both_are_empty() {
        assert_eq!(select_host(None, None), DEFAULT_HOST);
        assert_eq!(select_host(Some(""), Some("")), DEFAULT_HOST);
        assert_eq!(select_host(Some(""), Some("unix:///b.sock")), "unix:///b.sock");
    }

    #[test]
    fn addresses_are_unix_sockets_by_path_or_abstract_name() {
        assert!(matches!(socket_target("unix:///run/b.sock"), Ok(SocketTarget::Path("/run/b.sock"))));
        assert!(matches!(socket_target("/run/b.sock"), Ok(SocketTarget::Path("/run/b.sock"))));
        assert!(matches!(socket_target("unix://@berthd"), Ok(SocketTarget::Abstract(b"berthd"))));
        assert!(socket_target("tcp://127.0.0.1:2375").is_err());
        assert!(socket_target("unix://relative.sock").is_err());
    }

    #[test]
    fn missing_socket_reads_as_daemon_not_running() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let err = runtime
            .block_on(async { Berthd::connect("unix:///nonexistent/berthd.sock").map(|_| ()) })
            .expect_err("no daemon there");
        assert_eq!(
            describe(&err).as_deref(),
            Some(
                "berth: cannot connect to berthd at unix:///nonexistent/berthd.sock: No such file or directory; \
                 is berthd running? (start it with: berthd &)"
            )
        );
    }

    #[test]
    fn daemon_status_reads_as_error_response() {
        let err = anyhow::Error::from(ttrpc::Error::RpcStatus(ttrpc::get_status(
            Code::INVALID_ARGUMENT,
            "invalid reference \"A\"",
        )));
        assert_eq!(describe(&err).as_deref(), Some("Error response from daemon: invalid reference \"A\""));
        let missing =
            not_found_as_no_such_image(ttrpc::Error::RpcStatus(ttrpc::get_status(Code::NOT_FOUND, "x")), "busybox");
        assert_eq!(describe(&missing).as_deref(), Some("Error: No such image: busybox"));
    }
}
