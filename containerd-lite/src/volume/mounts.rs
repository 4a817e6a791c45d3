//! A new container's volumes: its `-v`/`--mount` volumes, the mounts of `--volumes-from`
//! containers, and an anonymous volume for each of the image's `Volumes` that no mount covers
//! (docker's order of precedence). Missing named volumes are created, anonymous ones get a
//! random name, empty ones are filled from the image (copy-up), and each volume mount is written
//! back into the config with its name and host directory, so the container record says which
//! volumes it uses.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{bail, Result};
use berth_proto::container_config::{CreateConfig, MountConfig};

use super::copy_up::ImageTree;
use super::VolumeError;
use crate::daemon::Berthd;
use crate::store::snapshot::Mount;

/// `target` without trailing slashes (`/data/` and `/data` are one mount point).
fn mount_point(target: &str) -> &str {
    match target.trim_end_matches('/') {
        "" => "/",
        trimmed => trimmed,
    }
}

/// docker's checks of a mount's destination, made before anything is created.
fn check_destination(m: &MountConfig) -> Result<()> {
    let kind = if m.kind.is_empty() { "volume" } else { m.kind.as_str() };
    if !m.target.starts_with('/') {
        bail!(VolumeError::Invalid(format!(
            "invalid mount config for type \"{kind}\": invalid mount path: '{}' mount path must be absolute",
            m.target
        )));
    }
    if mount_point(&m.target) == "/" {
        bail!(VolumeError::Invalid(format!(
            "invalid mount config for type \"{kind}\": invalid specification: destination can't be '/'"
        )));
    }
    if m.target.split('/').any(|c| c == "..") {
        bail!(VolumeError::Invalid(format!(
            "invalid mount config for type \"{kind}\": invalid mount path: '{}' must not contain \"..\"",
            m.target
        )));
    }
    if m.kind == "volume" && !m.source.is_empty() {
        super::validate_name(&m.source)?;
    }
    Ok(())
}

/// The mounts `--volumes-from CONTAINER[:ro|rw]` adds: that container's volumes and binds, read
/// only or writable as asked (as they were, by default).
fn volumes_from(d: &Berthd, spec: &str) -> Result<Vec<MountConfig>> {
    let (container, mode) = match spec.rsplit_once(':') {
        Some((c, m @ ("ro" | "rw"))) => (c, Some(m)),
        Some(_) => bail!(VolumeError::Invalid(format!("invalid mode for volumes-from: {spec}"))),
        None => (spec, None),
    };
    let source = d.containers.lookup(container)?;
    Ok(source
        .config
        .mounts
        .into_iter()
        .filter(|m| m.kind == "volume" || m.kind == "bind")
        .map(|mut m| {
            if let Some(mode) = mode {
                m.read_only = mode == "ro";
            }
            // The volume is that container's: removing this one must not take it along.
            m.anonymous = false;
            m.create_source = false;
            m.no_copy = true;
            m
        })
        .collect())
}

/// Resolves and creates the volumes of container `id` (see the module doc), rewriting
/// `config.mounts`. The volumes it creates are added to `created` (also when it fails), for the
/// caller to remove if the create fails. The caller holds the volume lock (`Volumes::lock`)
/// until the record is stored.
pub fn resolve(
    d: &Berthd,
    id: &str,
    config: &mut CreateConfig,
    image_volumes: &[String],
    snapshot: &[Mount],
    created: &mut Vec<String>,
) -> Result<()> {
    let mut seen = HashSet::new();
    for m in &config.mounts {
        check_destination(m)?;
        if !seen.insert(mount_point(&m.target).to_string()) {
            bail!(VolumeError::Invalid(format!("Duplicate mount point: {}", mount_point(&m.target))));
        }
    }
    for spec in &config.volumes_from {
        for m in volumes_from(d, spec)? {
            if seen.insert(mount_point(&m.target).to_string()) {
                config.mounts.push(m);
            }
        }
    }
    for path in image_volumes {
        if path.starts_with('/') && !path.split('/').any(|c| c == "..") && seen.insert(mount_point(path).to_string()) {
            config.mounts.push(MountConfig {
                kind: "volume".into(),
                target: mount_point(path).to_string(),
                ..Default::default()
            });
        }
    }

    let mut tree: Option<ImageTree> = None;
    let result = (|| -> Result<()> {
        for m in config.mounts.iter_mut().filter(|m| m.kind == "volume") {
            let anonymous = m.source.is_empty();
            let (volume, new) =
                d.volumes.create(&m.source, "", m.volume_labels.clone(), Default::default(), anonymous)?;
            if new {
                created.push(volume.name.clone());
                d.events.publish("/volumes/create", serde_json::json!({"name": volume.name}));
            }
            // Whatever the request said: only a volume made here for this container is its own.
            m.anonymous = new && anonymous;
            m.source = volume.name.clone();
            let host_path = d.volumes.mountpoint(&volume.name);
            m.host_path = host_path.display().to_string();
            if !m.no_copy {
                if tree.is_none() {
                    tree = Some(ImageTree::open(snapshot, &d.cfg.state.join("copy-up").join(id))?);
                }
                if let Some(tree) = &tree {
                    tree.copy_into(&m.target, Path::new(&host_path))?;
                }
            }
        }
        Ok(())
    })();
    if let Some(tree) = tree {
        if let Err(e) = tree.release() {
            tracing::warn!(container = id, "after copy-up: {e:#}");
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(kind: &str, source: &str, target: &str) -> MountConfig {
        MountConfig { kind: kind.into(), source: source.into(), target: target.into(), ..Default::default() }
    }

    #[test]
    fn destinations_are_checked_as_docker_does() {
        let err = check_destination(&mount("volume", "data", "data")).expect_err("relative");
        assert_eq!(
            err.to_string(),
            "invalid mount config for type \"volume\": invalid mount path: 'data' mount path must be absolute"
        );
        let err = check_destination(&mount("volume", "data", "/")).expect_err("root");
        assert!(err.to_string().contains("destination can't be '/'"), "{err}");
        assert!(check_destination(&mount("volume", "../x", "/data")).is_err());
        assert!(check_destination(&mount("volume", "a/b", "/data")).is_err());
        check_destination(&mount("volume", "", "/data")).expect("anonymous");
        check_destination(&mount("bind", "/host", "/data")).expect("bind");
    }
}
