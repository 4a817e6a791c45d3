//! Starting and reaching a container's shim exactly as containerd does: run
//! `containerd-shim-<name>-v2 -namespace NS -address ADDR -publish-binary BIN -id ID start` in the
//! bundle with `TTRPC_ADDRESS` (where the shim forwards its events: berthd's own socket), read
//! the address it prints, and speak the shim v2 Task API to it over ttrpc. `delete` runs the
//! binary's cleanup for a shim that is gone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use containerd_shim_protos::shim_async::TaskClient;
use tokio::process::Command;

/// The containerd namespace berthd's shims run in (their runtime root is named after it).
pub const NAMESPACE: &str = "berth";

/// `io.containerd.berth.v2` → `containerd-shim-berth-v2`.
pub fn binary_name(runtime: &str) -> Result<String> {
    let parts: Vec<&str> = runtime.split('.').collect();
    match parts.as_slice() {
        ["io", "containerd", name, version]
            if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Ok(format!("containerd-shim-{name}-{version}"))
        }
        _ => bail!("invalid runtime name {runtime:?}"),
    }
}

/// The shim binary for `runtime`: beside berthd's own executable first (a build's
/// `target/…/` or an install's bin dir), then on PATH.
pub fn find_binary(runtime: &str) -> Result<PathBuf> {
    let name = binary_name(runtime)?;
    let beside = std::env::current_exe().ok().and_then(|e| e.parent().map(|p| p.join(&name)));
    if let Some(p) = beside.filter(|p| p.is_file()) {
        return Ok(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(&name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!("failed to start shim: runtime {runtime:?}: {name} not found beside berthd or on PATH")
}

/// How to reach berthd, for the shim's flags and environment.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// berthd's socket path.
    pub socket: PathBuf,
}

/// `BINARY -namespace NS -address SOCK -publish-binary BERTHD -id ID [EXTRA…] ACTION` in
/// `bundle`, with containerd's environment, run to completion within 30 s.
async fn run_shim_command(
    binary: &Path,
    endpoint: &Endpoint,
    id: &str,
    bundle: &Path,
    extra: &[&std::ffi::OsStr],
    action: &str,
) -> Result<std::process::Output> {
    let berthd = std::env::current_exe().context("finding berthd's executable")?;
    let output = Command::new(binary)
        .args(["-namespace", NAMESPACE, "-address"])
        .arg(&endpoint.socket)
        .arg("-publish-binary")
        .arg(&berthd)
        .args(["-id", id])
        .args(extra)
        .arg(action)
        .current_dir(bundle)
        .env("TTRPC_ADDRESS", &endpoint.socket)
        .env("NAMESPACE", NAMESPACE)
        .env("MAX_SHIM_VERSION", "2")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), output)
        .await
        .with_context(|| format!("{} {action}: no answer in 30 s", binary.display()))?
        .with_context(|| format!("running {} {action}", binary.display()))?;
    if !output.status.success() {
        bail!("{} {action}: {}: {}", binary.display(), output.status, String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(output)
}

/// Runs `BINARY … start` in `bundle` and returns the address it printed.
pub async fn start(binary: &Path, endpoint: &Endpoint, id: &str, bundle: &Path) -> Result<String> {
    let output = run_shim_command(binary, endpoint, id, bundle, &[], "start").await.context("failed to start shim")?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_string();
    // containerd 1.7+ shims may print a JSON bootstrap; 1.6's print the bare address.
    let address = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => v["address"].as_str().map(str::to_string).unwrap_or_default(),
        Err(_) => text,
    };
    if address.is_empty() {
        bail!("failed to start shim: {} start printed no address", binary.display());
    }
    Ok(address)
}

/// A ttrpc Task client of the shim at `address` (`unix:///…`).
pub async fn connect(address: &str) -> Result<TaskClient> {
    let client = ttrpc::asynchronous::Client::connect(address)
        .with_context(|| format!("connecting to the shim at {address}"))?;
    Ok(TaskClient::new(client))
}

/// Runs `BINARY … -bundle BUNDLE delete`, the cleanup containerd runs for a shim that died.
pub async fn delete(binary: &Path, endpoint: &Endpoint, id: &str, bundle: &Path) -> Result<()> {
    run_shim_command(binary, endpoint, id, bundle, &["-bundle".as_ref(), bundle.as_os_str()], "delete")
        .await
        .map(|_| ())
}

/// A ttrpc context with a deadline, for calls that must not hang on a wedged shim.
pub fn ctx(timeout: Duration) -> ttrpc::context::Context {
    ttrpc::context::with_timeout(timeout.as_nanos() as i64)
}

/// A context without deadline (Wait).
pub fn ctx_forever() -> ttrpc::context::Context {
    ttrpc::context::Context::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_names_map_to_binaries() {
        assert_eq!(binary_name("io.containerd.berth.v2").expect("berth"), "containerd-shim-berth-v2");
        assert_eq!(binary_name("io.containerd.runc.v2").expect("runc"), "containerd-shim-runc-v2");
        assert!(binary_name("io.containerd.../x.v2").is_err());
        assert!(binary_name("berth").is_err());
    }
}
