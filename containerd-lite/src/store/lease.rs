//! Transfer leases: what a pull, push, save or load has stored or is reading, kept from garbage
//! collection until the transfer names it or ends — as containerd's leases. A transfer never holds
//! the gc lock while it waits on a registry or a client; it takes it (shared) only for the instant
//! it adds a resource, so a collection sees either the resource or none of the content it protects.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;

use crate::daemon::Berthd;
use crate::store::digest::Digest;
use crate::store::meta::{Metadata, Resource};

/// Leases of transfers; a transfer does not survive a daemon restart, so the daemon deletes
/// leftovers at start.
pub const TRANSFER_LEASE_PREFIX: &str = "berthd-transfer-";

pub struct TransferLease {
    d: Arc<Berthd>,
    id: String,
}

impl TransferLease {
    /// A new, empty lease for a transfer (`what` names it in the id, for debugging).
    pub async fn new(d: &Arc<Berthd>, what: &str) -> anyhow::Result<TransferLease> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let id =
            format!("{TRANSFER_LEASE_PREFIX}{what}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let meta = d.meta.clone();
        let lease_id = id.clone();
        tokio::task::spawn_blocking(move || meta.create_lease(&lease_id, None))
            .await?
            .with_context(|| format!("creating lease {id}"))?;
        Ok(TransferLease { d: d.clone(), id })
    }

    /// Protects `resource` (from async code).
    pub async fn protect(&self, resource: Resource) -> anyhow::Result<()> {
        let _gc = self.d.gc_lock.read().await;
        let (meta, id) = (self.d.meta.clone(), self.id.clone());
        tokio::task::spawn_blocking(move || meta.add_lease_resource(&id, resource)).await??;
        Ok(())
    }

    pub async fn protect_content(&self, digest: &Digest) -> anyhow::Result<()> {
        self.protect(Resource::Content(digest.clone())).await
    }

    /// Protects `resource` from blocking code (a `spawn_blocking` task).
    pub fn protect_blocking(&self, resource: Resource) -> anyhow::Result<()> {
        let _gc = self.d.gc_lock.blocking_read();
        Ok(self.d.meta.add_lease_resource(&self.id, resource)?)
    }
}

impl TransferLease {
    /// Protects `resource` when the caller already holds the gc lock (blocking code). Taking it
    /// again there could deadlock behind a queued collection.
    pub fn protect_held(&self, resource: Resource) -> anyhow::Result<()> {
        Ok(self.d.meta.add_lease_resource(&self.id, resource)?)
    }
}

impl Drop for TransferLease {
    fn drop(&mut self) {
        let (meta, id) = (self.d.meta.clone(), std::mem::take(&mut self.id));
        let delete = move || {
            if let Err(e) = meta.delete_lease(&id) {
                tracing::warn!("deleting lease {id}: {e}");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(delete)),
            Err(_) => delete(),
        }
    }
}

/// Deletes the leases of transfers a previous daemon did not finish.
pub fn delete_stale(meta: &Metadata) -> anyhow::Result<()> {
    for lease in meta.leases().context("listing leases")? {
        if lease.id.starts_with(TRANSFER_LEASE_PREFIX) {
            tracing::info!(lease = %lease.id, "removing the lease of an interrupted transfer");
            meta.delete_lease(&lease.id)?;
        }
    }
    Ok(())
}
