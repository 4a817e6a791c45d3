//! `berth version`: this client's version, then berthd's (Version.Version), like docker's.

use std::io::{self, Write};

use anyhow::Result;
use berth_proto::types::Empty;

use crate::daemon::{ctx, Berthd};

/// Prints the client part, then connects to `address` and prints the server part; a failure to
/// connect comes after the client part, as in docker.
pub async fn run(address: &str) -> Result<()> {
    let mut out = io::stdout();
    writeln!(out, "Client:")?;
    writeln!(out, " Version:      {}", env!("CARGO_PKG_VERSION"))?;
    writeln!(out, " API version:  berth.v1")?;
    writeln!(out, " OS/Arch:      {}/{}", std::env::consts::OS, go_arch(std::env::consts::ARCH))?;
    writeln!(out, " Host:         {address}")?;
    out.flush()?;
    let berthd = Berthd::connect(address)?;
    let server = berthd.version().version(ctx(), &Empty::default()).await?;
    writeln!(out)?;
    writeln!(out, "Server: berthd")?;
    writeln!(out, " Version:      {}", server.version)?;
    if !server.revision.is_empty() {
        writeln!(out, " Revision:     {}", server.revision)?;
    }
    writeln!(out, " Root:         {}", server.root)?;
    writeln!(out, " State:        {}", server.state)?;
    writeln!(out, " Pid:          {}", server.pid)?;
    Ok(())
}

/// The architecture as OCI platforms (and docker) name it.
fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "loongarch64" => "loong64",
        other => other,
    }
}
