//! `delete`: kill what is left, remove the cgroup, run poststop hooks, remove the state dir.

use super::Container;
use crate::state::{Status, STATE_FILE};
use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::Path;
use std::time::Duration;

/// Deletes container `id`; `force` also deletes a running one (SIGKILL first).
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    crate::state::validate_id(id)?;
    let dir = root.join(id);
    if !dir.join(STATE_FILE).exists() {
        // An aborted create can leave a dir without state; --force clears it as runc does.
        if dir.is_dir() && force {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
            return Ok(());
        }
        if force {
            return Ok(());
        }
        bail!("container {id} does not exist");
    }
    let c = match Container::open(root, id) {
        // Deleted by a concurrent delete while this one waited for the lock.
        Err(_) if force && !dir.join(STATE_FILE).exists() => return Ok(()),
        other => other?,
    };
    let status = c.status();
    match status {
        Status::Created | Status::Stopped => {}
        _ if force => {}
        _ => bail!("cannot delete container {id} that is not stopped: {status}"),
    }
    destroy(&c)?;
    crate::rootfs::unmount_host_mounts(&c.state.host_mounts)?;
    if let Some(hooks) = c.state.hooks()? {
        let state = c.state.oci_json(Status::Stopped);
        crate::hooks::run_all_warn(hooks.poststop().as_deref().unwrap_or_default(), &state, "poststop");
    }
    std::fs::remove_dir_all(&c.dir.path).with_context(|| format!("removing {}", c.dir.path.display()))?;
    Ok(())
}

/// Kills init and every process of the cgroup, waits for them, removes the cgroup.
pub fn destroy(c: &Container) -> Result<()> {
    let st = &c.state;
    if crate::state::init_alive(st.pid, st.init_start_time) {
        let _ = kill(Pid::from_raw(st.pid), Signal::SIGKILL);
    }
    // Init's death takes the rest of a pid namespace of its own with it (the kernel kills them),
    // as runc relies on; without one, every process of the cgroup is killed here.
    if !own_pid_namespace(&st.config) {
        for pid in st.cgroup.pids().unwrap_or_default() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    // A frozen process only dies once thawed (SIGKILL is already pending).
    if st.cgroup.is_frozen() {
        st.cgroup.freeze(false)?;
    }
    if !super::wait_gone(st.pid, st.init_start_time, Duration::from_secs(10)) {
        bail!("container {} init (pid {}) did not exit after SIGKILL", st.id, st.pid);
    }
    st.cgroup.remove()
}

/// True when the saved config gave init a new pid namespace (not one joined by path).
fn own_pid_namespace(config: &serde_json::Value) -> bool {
    let namespaces = config.pointer("/linux/namespaces").and_then(|n| n.as_array());
    namespaces.is_some_and(|all| {
        all.iter().any(|n| n["type"] == "pid" && n.get("path").and_then(|p| p.as_str()).is_none_or(str::is_empty))
    })
}

#[cfg(test)]
mod tests {
    use super::own_pid_namespace;
    use serde_json::json;

    #[test]
    fn only_a_new_pid_namespace_is_init_s_own() {
        assert!(own_pid_namespace(&json!({"linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]}})));
        assert!(own_pid_namespace(&json!({"linux": {"namespaces": [{"type": "pid", "path": ""}]}})));
        assert!(!own_pid_namespace(&json!({"linux": {"namespaces": [{"type": "pid", "path": "/proc/1/ns/pid"}]}})));
        assert!(!own_pid_namespace(&json!({"linux": {"namespaces": [{"type": "mount"}]}})));
        assert!(!own_pid_namespace(&json!({})));
    }
}
