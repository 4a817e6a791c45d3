//! `ps`: the processes of a container, from its cgroup.

use super::Container;
use anyhow::{bail, Context, Result};
use std::path::Path;

/// Pids in container `id`'s cgroup.
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>> {
    let c = Container::open(root, id)?;
    c.state.cgroup.pids()
}

/// runc's table mode: host `ps` with `ps_args` (default `-ef`), keeping the header and the
/// container's processes.
pub fn table(root: &Path, id: &str, ps_args: &[String]) -> Result<String> {
    let pids = pids(root, id)?;
    let args: Vec<String> = if ps_args.is_empty() { vec!["-ef".to_string()] } else { ps_args.to_vec() };
    let out = std::process::Command::new("ps").args(&args).output().context("running ps")?;
    if !out.status.success() {
        bail!("ps {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let Some(pid_col) = header.split_whitespace().position(|h| h == "PID") else {
        bail!("ps {}: output has no PID column", args.join(" "));
    };
    let mut table = format!("{header}\n");
    for line in lines {
        let pid = line.split_whitespace().nth(pid_col).and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            table.push_str(line);
            table.push('\n');
        }
    }
    Ok(table)
}
