//! Runtime options: which OCI runtime binary the shim drives and its state root. They come in
//! `CreateTaskRequest.options` as containerd's runc options (`containerd.runc.v1.Options`:
//! `binary_name`, `root`), and are saved to `options.json` in the bundle (the same JSON the
//! runc shim writes) so that `delete` after a dead shim finds the same runtime.

use crate::reaper::Reaper;
use crate::runtime::{self, Runtime};
use anyhow::{bail, Context, Result};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::oci::Options;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The file in the bundle.
pub const FILE: &str = "options.json";

/// What the shim needs from the runtime options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// Runtime binary (name on PATH or path); empty: berth-runtime.
    pub binary_name: String,
    /// Runtime state root; empty: `/run/containerd/berth/<namespace>`.
    pub root: String,
}

/// The options of a `CreateTaskRequest` (absent: defaults).
pub fn from_any(any: Option<&Any>) -> Result<RuntimeOptions> {
    let Some(any) = any.filter(|a| !a.type_url.is_empty() || !a.value.is_empty()) else {
        return Ok(RuntimeOptions::default());
    };
    let name = any.type_url.rsplit('/').next().unwrap_or_default();
    if name != "containerd.runc.v1.Options" {
        bail!("unsupported runtime options type {:?} (want containerd.runc.v1.Options)", any.type_url);
    }
    let opts = Options::parse_from_bytes(&any.value).context("decoding containerd.runc.v1.Options")?;
    // What this shim does not do is refused by name, never ignored.
    let unsupported = [
        (opts.systemd_cgroup, "SystemdCgroup (the systemd cgroup driver)"),
        (opts.no_pivot_root, "NoPivotRoot"),
        (opts.no_new_keyring, "NoNewKeyring"),
        (!opts.shim_cgroup.is_empty(), "ShimCgroup"),
        (opts.io_uid != 0 || opts.io_gid != 0, "IoUid/IoGid"),
        (!opts.criu_path.is_empty() || !opts.criu_image_path.is_empty() || !opts.criu_work_path.is_empty(), "Criu*"),
    ];
    if let Some((_, name)) = unsupported.iter().find(|(set, _)| *set) {
        bail!("runtime option {name} is not supported by containerd-shim-berth-v2 yet");
    }
    Ok(RuntimeOptions { binary_name: opts.binary_name, root: opts.root })
}

/// Saves the options to `<bundle>/options.json`.
pub fn write(bundle: &Path, opts: &RuntimeOptions) -> Result<()> {
    let mut json = serde_json::Map::new();
    if !opts.binary_name.is_empty() {
        json.insert("binary_name".into(), opts.binary_name.clone().into());
    }
    if !opts.root.is_empty() {
        json.insert("root".into(), opts.root.clone().into());
    }
    let path = bundle.join(FILE);
    std::fs::write(&path, serde_json::Value::Object(json).to_string())
        .with_context(|| format!("writing {}", path.display()))
}

/// Reads `<bundle>/options.json` (missing: defaults).
pub fn read(bundle: &Path) -> Result<RuntimeOptions> {
    let path = bundle.join(FILE);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RuntimeOptions::default()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let v: serde_json::Value = serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))?;
    let field = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    Ok(RuntimeOptions { binary_name: field("binary_name"), root: field("root") })
}

/// The runtime client these options name, logging to `<bundle>/log.json`.
pub fn runtime(opts: &RuntimeOptions, namespace: &str, bundle: &Path, reaper: Option<Arc<Reaper>>) -> Result<Runtime> {
    let binary =
        if opts.binary_name.is_empty() { runtime::default_binary()? } else { runtime::find_binary(&opts.binary_name)? };
    let root = if opts.root.is_empty() {
        Path::new("/run/containerd/berth").join(namespace)
    } else {
        PathBuf::from(&opts.root)
    };
    Ok(Runtime::new(binary, root, bundle.join("log.json"), reaper))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_runc_options_and_round_trips_options_json() {
        let mut o = Options::new();
        o.binary_name = "/usr/sbin/runc".into();
        o.root = "/run/x".into();
        let mut any = Any::new();
        any.type_url = "containerd.runc.v1.Options".into();
        any.value = o.write_to_bytes().expect("encode");
        let opts = from_any(Some(&any)).expect("decode");
        assert_eq!(opts, RuntimeOptions { binary_name: "/usr/sbin/runc".into(), root: "/run/x".into() });

        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), &opts).expect("write");
        assert_eq!(read(dir.path()).expect("read"), opts);
        assert_eq!(from_any(None).expect("none"), RuntimeOptions::default());
        any.type_url = "other.Options".into();
        assert!(from_any(Some(&any)).is_err());
    }

    #[test]
    fn options_the_shim_cannot_honour_are_refused_by_name() {
        let mut o = Options::new();
        o.systemd_cgroup = true;
        let mut any = Any::new();
        any.type_url = "containerd.runc.v1.Options".into();
        any.value = o.write_to_bytes().expect("encode");
        let err = from_any(Some(&any)).expect_err("systemd accepted").to_string();
        assert!(err.contains("SystemdCgroup"), "{err}");
        let mut o = Options::new();
        o.io_uid = 1000;
        any.value = o.write_to_bytes().expect("encode");
        assert!(from_any(Some(&any)).expect_err("io uid accepted").to_string().contains("IoUid"));
    }
}
