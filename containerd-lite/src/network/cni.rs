//! The CNI 1.0 exec protocol, as libcni speaks it: a network configuration list (conflist) is
//! applied to a network namespace by running its plugins in order (ADD, CHECK) or in reverse
//! (DEL), each reading its config on stdin (with the previous plugin's result as `prevResult`
//! and the `runtimeConfig` its `capabilities` ask for) and the CNI_* variables from its
//! environment. The result of an ADD is cached under berthd's state with everything DEL needs,
//! so an attachment is undone exactly, even after berthd restarted or the network was removed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The CNI version of the configurations berthd writes.
pub const CNI_VERSION: &str = "1.0.0";

/// Runs CNI plugins and keeps their results.
#[derive(Debug, Clone)]
pub struct Cni {
    /// Where plugin binaries are looked up (CNI_PATH), in order.
    pub plugin_dirs: Vec<PathBuf>,
    /// The result cache: one file per attachment.
    pub cache_dir: PathBuf,
}

/// One interface of one container on one network: what CNI_* says to the plugins.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Attachment {
    pub container_id: String,
    /// The network namespace (a path to an nsfs file).
    pub netns: PathBuf,
    pub ifname: String,
    /// CNI_ARGS pairs (`IP`, `MAC`); `IgnoreUnknown=1` is added so every plugin accepts them.
    pub args: Vec<(String, String)>,
    /// Offered to each plugin for the capabilities it declares (`portMappings`, `ips`, `mac`).
    pub runtime_config: serde_json::Map<String, Value>,
}

/// What an ADD leaves for its DEL.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cached {
    pub conflist: Value,
    pub attachment: Attachment,
    pub result: Value,
}

/// A plugin's error result (CNI spec "Error"), or its stderr when it wrote none.
#[derive(Debug, thiserror::Error)]
#[error("plugin type=\"{plugin}\" failed ({command}): {msg}")]
pub struct PluginError {
    pub plugin: String,
    pub command: String,
    pub msg: String,
}

impl Cni {
    /// Applies `conflist` to the attachment; returns the last plugin's result, cached. A
    /// failure undoes the plugins that already ran (DEL), so nothing is left.
    pub fn add(&self, conflist: &Value, att: &Attachment) -> Result<Value> {
        let mut prev: Option<Value> = None;
        for plugin in plugins(conflist)? {
            match self.exec(conflist, plugin, "ADD", att, prev.as_ref()) {
                Ok(result) => prev = Some(result),
                Err(e) => {
                    if let Err(undo) = self.run_del(conflist, att, prev.as_ref()) {
                        tracing::warn!(container = %att.container_id, "undoing a failed CNI ADD: {undo:#}");
                    }
                    return Err(e);
                }
            }
        }
        let result = prev.unwrap_or_else(|| json!({"cniVersion": CNI_VERSION}));
        let cached = Cached { conflist: conflist.clone(), attachment: att.clone(), result: result.clone() };
        if let Err(e) = self.write_cache(&cached) {
            let _ = self.run_del(conflist, att, Some(&result));
            return Err(e);
        }
        Ok(result)
    }

    /// CHECK of a cached attachment: each plugin for which `wanted` holds verifies what it set
    /// up is still there.
    pub fn check(&self, cached: &Cached, wanted: impl Fn(&str) -> bool) -> Result<()> {
        for plugin in plugins(&cached.conflist)? {
            if wanted(plugin["type"].as_str().unwrap_or_default()) {
                self.exec(&cached.conflist, plugin, "CHECK", &cached.attachment, Some(&cached.result))?;
            }
        }
        Ok(())
    }

    /// DEL of a cached attachment (with the conflist and result of its ADD), then the cache entry
    /// goes. Every plugin runs even when one fails; the first failure is returned.
    pub fn del(&self, cached: &Cached) -> Result<()> {
        self.run_del(&cached.conflist, &cached.attachment, Some(&cached.result))?;
        let path =
            self.cache_path(network_name(&cached.conflist), &cached.attachment.container_id, &cached.attachment.ifname);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }

    fn run_del(&self, conflist: &Value, att: &Attachment, prev: Option<&Value>) -> Result<()> {
        let mut first: Option<anyhow::Error> = None;
        for plugin in plugins(conflist)?.iter().rev() {
            if let Err(e) = self.exec(conflist, plugin, "DEL", att, prev) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// The cached ADD of this attachment, if any.
    pub fn cached(&self, network: &str, container_id: &str, ifname: &str) -> Result<Option<Cached>> {
        read_cache(&self.cache_path(network, container_id, ifname))
    }

    /// Every cached attachment (for the sweep after a restart).
    pub fn all_cached(&self) -> Vec<Cached> {
        self.cached_where(|_| true)
    }

    /// The cached attachments of one container.
    pub fn cached_for(&self, container_id: &str) -> Vec<Cached> {
        let needle = format!("-{container_id}-");
        self.cached_where(|file| file.contains(&needle))
            .into_iter()
            .filter(|c| c.attachment.container_id == container_id)
            .collect()
    }

    /// The cache entries whose file name passes `keep`; unreadable ones are dropped.
    fn cached_where(&self, keep: impl Fn(&str) -> bool) -> Vec<Cached> {
        let Ok(entries) = std::fs::read_dir(&self.cache_dir) else { return Vec::new() };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            if !entry.file_name().to_str().is_some_and(&keep) {
                continue;
            }
            match read_cache(&entry.path()) {
                Ok(Some(c)) => out.push(c),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(path = %entry.path().display(), "dropping an unreadable CNI cache entry: {e:#}");
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        out
    }

    fn cache_path(&self, network: &str, container_id: &str, ifname: &str) -> PathBuf {
        self.cache_dir.join(format!("{network}-{container_id}-{ifname}.json"))
    }

    fn write_cache(&self, cached: &Cached) -> Result<()> {
        std::fs::create_dir_all(&self.cache_dir).with_context(|| format!("creating {}", self.cache_dir.display()))?;
        let path =
            self.cache_path(network_name(&cached.conflist), &cached.attachment.container_id, &cached.attachment.ifname);
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec(cached).context("encoding a CNI cache entry")?;
        std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("renaming {} into place", tmp.display()))
    }

    fn find_plugin(&self, kind: &str) -> Result<PathBuf> {
        if kind.is_empty() || kind.contains('/') || kind.starts_with('.') {
            bail!("invalid CNI plugin type {kind:?}");
        }
        self.plugin_dirs.iter().map(|d| d.join(kind)).find(|p| p.is_file()).with_context(|| {
            let dirs: Vec<String> = self.plugin_dirs.iter().map(|d| d.display().to_string()).collect();
            format!("failed to find plugin \"{kind}\" in path [{}]", dirs.join(" "))
        })
    }

    /// Runs one plugin of the list with `command`; its result (empty object for DEL/CHECK).
    fn exec(
        &self,
        conflist: &Value,
        plugin: &Value,
        command: &str,
        att: &Attachment,
        prev: Option<&Value>,
    ) -> Result<Value> {
        let kind = plugin["type"].as_str().unwrap_or_default();
        let binary = self.find_plugin(kind)?;
        let stdin = plugin_config(conflist, plugin, att, prev);
        let cni_path = std::env::join_paths(&self.plugin_dirs).context("joining CNI_PATH")?;
        let mut args = vec!["IgnoreUnknown=1".to_string()];
        args.extend(att.args.iter().map(|(k, v)| format!("{k}={v}")));
        let mut child = Command::new(&binary)
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &att.container_id)
            .env("CNI_NETNS", &att.netns)
            .env("CNI_IFNAME", &att.ifname)
            .env("CNI_ARGS", args.join(";"))
            .env("CNI_PATH", cni_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running CNI plugin {}", binary.display()))?;
        if let Some(mut input) = child.stdin.take() {
            let bytes = serde_json::to_vec(&stdin).context("encoding a CNI plugin's config")?;
            // A plugin that exits without reading its stdin reports its error on stdout.
            let _ = input.write_all(&bytes);
        }
        let out = child.wait_with_output().with_context(|| format!("waiting for CNI plugin {}", binary.display()))?;
        let fail = |msg: String| PluginError { plugin: kind.to_string(), command: command.to_lowercase(), msg };
        if !out.status.success() {
            let msg = match serde_json::from_slice::<Value>(&out.stdout) {
                Ok(err) if err["msg"].is_string() => {
                    let msg = err["msg"].as_str().unwrap_or_default();
                    match err["details"].as_str().filter(|d| !d.is_empty()) {
                        Some(details) => format!("{msg}: {details}"),
                        None => msg.to_string(),
                    }
                }
                _ => String::from_utf8_lossy(&out.stderr).trim().to_string(),
            };
            return Err(fail(msg).into());
        }
        if command != "ADD" {
            return Ok(json!({}));
        }
        serde_json::from_slice(&out.stdout)
            .map_err(|e| fail(format!("unparsable result: {e}: {}", String::from_utf8_lossy(&out.stdout))).into())
    }
}

/// The conflist's `plugins`.
fn plugins(conflist: &Value) -> Result<&Vec<Value>> {
    conflist["plugins"]
        .as_array()
        .with_context(|| format!("CNI config list {:?} has no plugins", network_name(conflist)))
}

fn network_name(conflist: &Value) -> &str {
    conflist["name"].as_str().unwrap_or_default()
}

/// What one plugin reads on stdin: its own config with the list's name and version, the previous
/// result and the runtime config its capabilities take.
fn plugin_config(conflist: &Value, plugin: &Value, att: &Attachment, prev: Option<&Value>) -> Value {
    let mut conf = plugin.clone();
    conf["name"] = conflist["name"].clone();
    conf["cniVersion"] = conflist["cniVersion"].clone();
    if let Some(prev) = prev {
        conf["prevResult"] = prev.clone();
    }
    let wanted: serde_json::Map<String, Value> = att
        .runtime_config
        .iter()
        .filter(|(k, _)| plugin["capabilities"][k.as_str()].as_bool() == Some(true))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(obj) = conf.as_object_mut() {
        obj.remove("capabilities");
        if !wanted.is_empty() {
            obj.insert("runtimeConfig".into(), Value::Object(wanted));
        }
    }
    conf
}

fn read_cache(path: &Path) -> Result<Option<Cached>> {
    if path.extension().is_none_or(|e| e != "json") {
        return Ok(None);
    }
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).with_context(|| format!("parsing {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugins_get_the_lists_name_prev_result_and_only_their_capabilities() {
        let list = json!({"cniVersion": "1.0.0", "name": "n", "plugins": [
            {"type": "bridge"},
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ]});
        let mut att = Attachment::default();
        att.runtime_config.insert("portMappings".into(), json!([{"hostPort": 8080}]));
        let bridge = plugin_config(&list, &list["plugins"][0], &att, None);
        assert_eq!(bridge, json!({"type": "bridge", "name": "n", "cniVersion": "1.0.0"}));
        let prev = json!({"ips": []});
        let portmap = plugin_config(&list, &list["plugins"][1], &att, Some(&prev));
        assert_eq!(portmap["prevResult"], prev);
        assert_eq!(portmap["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
        assert!(portmap.get("capabilities").is_none());
    }
}
