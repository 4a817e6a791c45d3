//! A network namespace a test makes (`ip netns add`, loopback up) to run a daemon in: its
//! bridges, veths, iptables rules and forwarding settings live there and vanish with it.

use std::path::PathBuf;
use std::process::Command;

use super::process::{run, try_run, Outcome, HANG_GUARD};

/// A named network namespace, deleted on drop.
pub struct NetNamespace {
    pub name: String,
}

impl NetNamespace {
    /// A new namespace named after `prefix` and this process, with loopback up.
    pub fn new(prefix: &str) -> NetNamespace {
        crate::require_root();
        let name = crate::unique_id(prefix);
        let out = run(Command::new("ip").args(["netns", "add", &name]));
        assert_eq!(out.code, 0, "ip netns add {name}: {out}");
        let ns = NetNamespace { name };
        ns.ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's nsfs file.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// `args` run inside the namespace.
    pub fn run(&self, args: &[&str]) -> Outcome {
        run(Command::new("ip").args(["netns", "exec", &self.name]).args(args))
    }

    /// `args` run inside the namespace, which must succeed; stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.code, 0, "in netns {}: {out}", self.name);
        out.stdout
    }
}

impl Drop for NetNamespace {
    fn drop(&mut self) {
        let _ = try_run(Command::new("ip").args(["netns", "del", &self.name]), HANG_GUARD);
    }
}
