//! The `delete` action: containerd runs it when a shim died (or never answered) to clean up the
//! task: force-delete the container in the runtime named by the bundle's `options.json`,
//! unmount the rootfs, remove a dead task socket, and print a `DeleteResponse` (protobuf) on
//! stdout. Warnings go to stderr, which containerd logs.

use crate::args::Flags;
use anyhow::{Context, Result};
use containerd_shim_protos::api::DeleteResponse;
use containerd_shim_protos::protobuf::{Message, MessageField};
use std::io::Write;
use std::path::PathBuf;

/// The `delete` action; see the module doc.
pub fn delete(flags: &Flags) -> Result<()> {
    let bundle = match &flags.bundle {
        Some(b) => b.clone(),
        None => std::env::current_dir().context("finding the bundle (cwd)")?,
    };
    let runtime =
        crate::options::read(&bundle).and_then(|opts| crate::options::runtime(&opts, &flags.namespace, &bundle, None));
    match runtime {
        Ok(rt) => {
            if let Err(e) = rt.delete(&flags.id, true) {
                eprintln!("runtime delete --force {}: {e:#}", flags.id);
            }
        }
        Err(e) => eprintln!("no runtime to delete {} with: {e:#}", flags.id),
    }
    let rootfs: PathBuf = bundle.join("rootfs");
    if let Err(e) = crate::mount::unmount_all(&rootfs) {
        eprintln!("{e:#}");
    }
    crate::start::remove_dead_socket(&crate::start::socket_address(&flags.address, &flags.namespace, &flags.id));

    let mut resp = DeleteResponse::new();
    resp.pid = crate::runtime::read_pid_file(&bundle.join("init.pid")).map_or(0, |p| p as u32);
    resp.exit_status = 128 + libc::SIGKILL as u32;
    resp.exited_at = MessageField::some(crate::events::timestamp(std::time::SystemTime::now()));
    let bytes = resp.write_to_bytes().context("encoding the DeleteResponse")?;
    let mut out = std::io::stdout().lock();
    out.write_all(&bytes).and_then(|()| out.flush()).context("writing the DeleteResponse")
}
