//! Starts a private dockerd 20.10 (with its containerd) and a private podman 4.3, both with
//! runc, loads the busybox image into them, prints one shell line per engine
//! (`docker=<command>`, `podman=<command>`: a client command line with its environment, ready for
//! `run --rm …`), and keeps them until its stdin closes; then removes their containers and stops
//! them. bench/run.sh uses it to measure docker and podman beside berth in one hyperfine run.
//! With `--networked` (only inside a network namespace made for it: see bench/network.sh),
//! dockerd gets its default networking (docker0, iptables, userland proxy).
//!
//! usage: peer-engines [--networked] DIR DOCKER_ARCHIVE

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use berth_integration::engines::docker::Dockerd;
use berth_integration::engines::podman::Podman;

/// `env K=V … PROGRAM ARGS…`, single-quoted for a shell.
fn shell_line(cmd: &Command) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    // env's options (-u) come before its assignments.
    let mut parts = vec!["env".to_string()];
    for (k, v) in cmd.get_envs() {
        if v.is_none() {
            parts.push(format!("-u {}", quote(&k.to_string_lossy())));
        }
    }
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            parts.push(quote(&format!("{}={}", k.to_string_lossy(), v.to_string_lossy())));
        }
    }
    parts.push(quote(&cmd.get_program().to_string_lossy()));
    parts.extend(cmd.get_args().map(|a| quote(&a.to_string_lossy())));
    parts.join(" ")
}

fn main() -> Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let networked = args.first().is_some_and(|a| a == "--networked");
    if networked {
        args.remove(0);
    }
    let [dir, archive] = args.as_slice() else { bail!("usage: peer-engines [--networked] DIR DOCKER_ARCHIVE") };
    let (dir, archive) = (PathBuf::from(dir), Path::new(archive));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let runc = Path::new("/usr/sbin/runc");
    let dockerd = if networked {
        Dockerd::start_networked(&dir.join("docker"), "/berthbench-docker")
    } else {
        Dockerd::start(&dir.join("docker"), "/berthbench-docker", &[])
    };
    dockerd.load(archive);
    let podman = Podman::new(&dir.join("podman"), runc);
    podman.load(archive);
    println!("docker={}", shell_line(&dockerd.docker()));
    println!("podman={}", shell_line(&podman.command()));
    println!("ready");
    // Until bench/run.sh is done with them.
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    dockerd.remove_everything();
    podman.remove_everything();
    Ok(())
}
