//! Reading images out of the content store: index → platform manifest → config and layers,
//! platform matching, chain IDs. Every digest and size from a manifest is parsed as hostile input.

pub mod archive;
pub mod draft;
pub mod import;
pub mod oci_archive;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registry;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::store::content::ContentStore;
use crate::store::digest::Digest;
use crate::store::meta::Target;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";

/// Manifests, indexes and configs are read whole; nothing legitimate comes near this.
pub const MAX_METADATA_BLOB: u64 = 4 << 20;

pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

pub fn is_manifest(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
}

impl Descriptor {
    pub fn target(&self) -> Target {
        Target { media_type: self.media_type.clone(), digest: self.digest.clone(), size: self.size }
    }
}

impl From<&Target> for Descriptor {
    fn from(t: &Target) -> Descriptor {
        Descriptor {
            media_type: t.media_type.clone(),
            digest: t.digest.clone(),
            size: t.size,
            platform: None,
            annotations: None,
            urls: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The parts of an image config berth reads (the whole JSON is kept for inspect).
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub created: Option<String>,
    pub rootfs: RootFs,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

/// os/architecture[/variant], as in an index's platform objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this berthd runs on (Go's names, as registries use them).
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "x86" => ("386", None),
            "arm" => ("arm", Some("v7")),
            "powerpc64" => ("ppc64le", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            other => (other, None),
        };
        Platform { architecture: architecture.into(), os: "linux".into(), variant: variant.map(Into::into) }
    }

    /// Whether an index entry's platform serves a request for `self`: os and architecture
    /// equal; the variant only when both name one (arm64 images often omit "v8").
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && match (&self.variant, &other.variant) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl FromStr for Platform {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok =
            |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => {
                Ok(Platform { os: (*os).into(), architecture: (*arch).into(), variant: None })
            }
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => {
                Ok(Platform { os: (*os).into(), architecture: (*arch).into(), variant: Some((*variant).into()) })
            }
            _ => bail!("invalid platform {s:?}: expected os/arch[/variant], e.g. linux/amd64"),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Parses JSON of a manifest or index, naming the blob on error.
pub fn parse<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str, digest: &Digest) -> anyhow::Result<T> {
    serde_json::from_slice(bytes).with_context(|| format!("parsing {what} {digest}"))
}

/// The media type of a manifest or index, from the registry's header or its own field.
pub fn sniff_media_type(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        config: Option<serde_json::Value>,
    }
    let p: Probe = serde_json::from_slice(bytes).ok()?;
    match p {
        Probe { media_type: Some(m), .. } => Some(m),
        Probe { manifests: Some(_), .. } => Some(OCI_INDEX.into()),
        Probe { config: Some(_), .. } => Some(OCI_MANIFEST.into()),
        _ => None,
    }
}

/// Picks the manifest for `platform` out of an index. A manifest without a platform in an index
/// is not chosen (attestations and the like); the first match wins, as containerd.
pub fn select_platform<'a>(index: &'a Index, platform: &Platform, digest: &Digest) -> anyhow::Result<&'a Descriptor> {
    index
        .manifests
        .iter()
        .filter(|m| is_manifest(&m.media_type))
        .find(|m| m.platform.as_ref().is_some_and(|p| platform.matches(p)))
        .ok_or_else(|| {
            let have: Vec<String> =
                index.manifests.iter().filter_map(|m| m.platform.as_ref().map(|p| p.to_string())).collect();
            anyhow::anyhow!(
                "no matching manifest for {platform} in the manifest list entries (index {digest} has: {})",
                if have.is_empty() { "none".into() } else { have.join(", ") }
            )
        })
}

/// An image resolved for one platform, from local content.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub manifest_desc: Descriptor,
    pub manifest: Manifest,
    pub manifest_bytes: Vec<u8>,
    pub config: Config,
    pub config_bytes: Vec<u8>,
}

impl Resolved {
    /// The platform the config says the image is for.
    pub fn platform(&self) -> Platform {
        Platform {
            architecture: self.config.architecture.clone(),
            os: self.config.os.clone(),
            variant: self.config.variant.clone(),
        }
    }

    /// Compressed size as docker's SIZE before unpack: config plus layers.
    pub fn size(&self) -> u64 {
        self.manifest.config.size + self.manifest.layers.iter().map(|l| l.size).sum::<u64>()
    }

    pub fn chain_ids(&self) -> Vec<Digest> {
        chain_ids(&self.config.rootfs.diff_ids)
    }
}

/// Resolves `target` (an index or a manifest) for `platform` from what is in `content`.
pub fn resolve(content: &ContentStore, target: &Descriptor, platform: &Platform) -> anyhow::Result<Resolved> {
    let bytes = read(content, &target.digest)?;
    let media_type = if target.media_type.is_empty() {
        sniff_media_type(&bytes).unwrap_or_default()
    } else {
        target.media_type.clone()
    };
    let (manifest_desc, manifest_bytes) = if is_index(&media_type) {
        let index: Index = parse(&bytes, "index", &target.digest)?;
        let desc = local_platform(content, &index, platform, &target.digest)?;
        let bytes = read(content, &desc.digest)?;
        (desc, bytes)
    } else if is_manifest(&media_type) {
        (target.clone(), bytes)
    } else {
        bail!("{}: unsupported media type {media_type:?}", target.digest)
    };
    let manifest: Manifest = parse(&manifest_bytes, "manifest", &manifest_desc.digest)?;
    let config_bytes = read(content, &manifest.config.digest)?;
    let config: Config = parse(&config_bytes, "image config", &manifest.config.digest)?;
    check_layers(&manifest, &config, &manifest_desc.digest)?;
    Ok(Resolved { manifest_desc, manifest, manifest_bytes, config, config_bytes })
}

/// The manifest of an index to use from local content: the one for `platform` if it is stored,
/// else the first stored one (an image pulled with `--platform` for another platform has only
/// that platform's manifest).
fn local_platform(
    content: &ContentStore,
    index: &Index,
    platform: &Platform,
    digest: &Digest,
) -> anyhow::Result<Descriptor> {
    let stored = |d: &Descriptor| content.info(&d.digest).ok().flatten().is_some();
    match select_platform(index, platform, digest) {
        Ok(d) if stored(d) => Ok(d.clone()),
        preferred => {
            index.manifests.iter().filter(|m| is_manifest(&m.media_type)).find(|m| stored(m)).cloned().ok_or_else(
                || match preferred {
                    Err(e) => e,
                    Ok(d) => anyhow::anyhow!("index {digest}: manifest {} for {platform} is not stored", d.digest),
                },
            )
        }
    }
}

/// A manifest's layers and its config's diff_ids must pair up one to one.
pub fn check_layers(manifest: &Manifest, config: &Config, digest: &Digest) -> anyhow::Result<()> {
    if config.rootfs.kind != "layers" {
        bail!("manifest {digest}: config rootfs type {:?} is not \"layers\"", config.rootfs.kind);
    }
    if manifest.layers.len() != config.rootfs.diff_ids.len() {
        bail!(
            "manifest {digest} has {} layers but its config lists {} diff_ids",
            manifest.layers.len(),
            config.rootfs.diff_ids.len()
        );
    }
    Ok(())
}

/// Reads a manifest, index or config blob, bounded.
pub fn read(content: &ContentStore, digest: &Digest) -> anyhow::Result<Vec<u8>> {
    content.read_all(digest, MAX_METADATA_BLOB).with_context(|| format!("reading {digest}"))
}

/// The OCI chain IDs of a layer stack: ChainID(L0) = DiffID(L0), ChainID(Ln) =
/// sha256(ChainID(Ln-1) + " " + DiffID(Ln)). Committed layer snapshots are named by them.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => Digest::sha256(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = Digest::sha256(b"a");
        let b = Digest::sha256(b"b");
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        assert_eq!(ids[1], Digest::sha256(format!("{a} {b}").as_bytes()));
    }

    #[test]
    fn platforms_parse_and_match() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        let bare: Platform = "linux/arm64".parse().unwrap();
        assert!(p.matches(&bare) && bare.matches(&p));
        assert!(!p.matches(&"linux/arm64/v9".parse().unwrap()));
        assert!(!bare.matches(&"linux/amd64".parse().unwrap()));
        for bad in ["", "linux", "linux/", "Linux/amd64", "a/b/c/d", "linux/../x"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad:?}");
        }
        assert_eq!(Platform::host().os, "linux");
    }

    #[test]
    fn index_selection_names_what_it_has() {
        let m = |arch: &str, n: &[u8]| Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: Digest::sha256(n),
            size: 1,
            platform: Some(Platform { architecture: arch.into(), os: "linux".into(), variant: None }),
            annotations: None,
            urls: None,
        };
        let index = Index {
            schema_version: 2,
            media_type: Some(OCI_INDEX.into()),
            manifests: vec![m("amd64", b"1"), m("arm64", b"2")],
            annotations: None,
        };
        let d = Digest::sha256(b"i");
        let got = select_platform(&index, &"linux/arm64".parse().unwrap(), &d).unwrap();
        assert_eq!(got.digest, Digest::sha256(b"2"));
        let err = select_platform(&index, &"linux/s390x".parse().unwrap(), &d).unwrap_err();
        assert!(err.to_string().contains("linux/amd64, linux/arm64"), "{err}");
        assert!(
            err.to_string().starts_with("no matching manifest for linux/s390x in the manifest list entries"),
            "docker's words: {err}"
        );
    }
}
