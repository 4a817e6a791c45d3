//! The build cache: a step's key (what its result depends on) → the manifest of the image state
//! it produced. The manifests are kept from garbage collection by one lease, so the cache
//! survives berthd restarts; `system prune` drops the entries no image builds on and lets gc take
//! what only they held.

use std::collections::HashSet;

use anyhow::{Context, Result};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::daemon::Berthd;
use crate::image::{self, Descriptor, Platform};
use crate::store::digest::Digest;
use crate::store::meta::Resource;

/// Step key (hex sha256) → manifest digest.
const BUILD_CACHE: TableDefinition<&str, &str> = TableDefinition::new("build_cache");
/// The lease holding every cached manifest.
const CACHE_LEASE: &str = "berth-build-cache";

/// The cached result of `key`, if any.
pub fn get(d: &Berthd, key: &str) -> Result<Option<Digest>> {
    let db = d.meta.db();
    let txn = db.begin_read().context("reading the build cache")?;
    let table = match txn.open_table(BUILD_CACHE) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e).context("reading the build cache"),
    };
    let value = table.get(key).context("reading the build cache")?;
    value.map(|v| v.value().parse::<Digest>().map_err(anyhow::Error::from)).transpose()
}

/// Records `manifest` as the result of `key` (blocking). The caller's transfer lease protects
/// the manifest until then.
pub fn put(d: &Berthd, key: &str, manifest: &Digest) -> Result<()> {
    if d.meta.lease(CACHE_LEASE)?.is_none() {
        match d.meta.create_lease(CACHE_LEASE, None) {
            Ok(_) | Err(crate::store::meta::MetaError::LeaseExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    {
        let _gc = d.gc_lock.blocking_read();
        d.meta.add_lease_resource(CACHE_LEASE, Resource::Content(manifest.clone()))?;
    }
    let db = d.meta.db();
    let txn = db.begin_write().context("writing the build cache")?;
    {
        let mut table = txn.open_table(BUILD_CACHE).context("writing the build cache")?;
        table.insert(key, manifest.to_string().as_str()).context("writing the build cache")?;
    }
    txn.commit().context("writing the build cache")?;
    Ok(())
}

/// Drops the entries whose layers no image uses (blocking; the caller holds the gc lock and
/// collects afterwards). Returns how many were dropped.
pub fn prune_unreferenced(d: &Berthd) -> Result<usize> {
    let platform = Platform::host();
    let mut used: HashSet<Digest> = HashSet::new();
    for img in d.meta.images()? {
        if let Ok(r) = image::resolve(&d.content, &Descriptor::from(&img.target), &platform) {
            used.extend(r.chain_ids());
        }
    }
    let db = d.meta.db();
    let entries: Vec<(String, String)> = {
        let txn = db.begin_read().context("reading the build cache")?;
        match txn.open_table(BUILD_CACHE) {
            Ok(table) => table
                .iter()
                .context("reading the build cache")?
                .filter_map(|e| e.ok().map(|(k, v)| (k.value().to_string(), v.value().to_string())))
                .collect(),
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
            Err(e) => return Err(e).context("reading the build cache"),
        }
    };
    let mut dropped = Vec::new();
    for (key, manifest) in entries {
        let Ok(digest) = manifest.parse::<Digest>() else {
            dropped.push((key, None));
            continue;
        };
        let desc = Descriptor {
            media_type: image::OCI_MANIFEST.to_string(),
            digest: digest.clone(),
            size: 0,
            platform: None,
            annotations: None,
            urls: None,
        };
        let keep = image::resolve(&d.content, &desc, &platform)
            .ok()
            .is_some_and(|r| r.chain_ids().last().is_none_or(|top| used.contains(top)));
        if !keep {
            dropped.push((key, Some(digest)));
        }
    }
    let txn = db.begin_write().context("writing the build cache")?;
    {
        let mut table = txn.open_table(BUILD_CACHE).context("writing the build cache")?;
        for (key, _) in &dropped {
            table.remove(key.as_str()).context("writing the build cache")?;
        }
    }
    txn.commit().context("writing the build cache")?;
    for digest in dropped.iter().filter_map(|(_, d)| d.as_ref()) {
        d.meta.remove_lease_resource(CACHE_LEASE, &Resource::Content(digest.clone()))?;
    }
    Ok(dropped.len())
}
