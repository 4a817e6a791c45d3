//! `berth update`: new resource limits or restart policy for containers (Containers.Update).

use anyhow::{bail, Context, Result};
use berth_proto::container_config::UpdateConfig;
use berth_proto::containers::UpdateContainerRequest;

use crate::commands::container::each;
use crate::container_flags::{parse_nano_cpus, parse_restart, parse_size};
use crate::daemon::{ctx, Berthd};

/// Update configuration of one or more containers.
#[derive(clap::Args, Debug, Default)]
pub struct UpdateArgs {
    /// Memory limit (e.g. 64m, 1g).
    #[arg(short, long)]
    memory: Option<String>,
    /// Swap limit equal to memory plus swap: -1 for unlimited.
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Number of CPUs.
    #[arg(long)]
    cpus: Option<String>,
    /// CPU shares (relative weight).
    #[arg(short = 'c', long = "cpu-shares")]
    cpu_shares: Option<u64>,
    /// CPUs in which to allow execution (0-3, 0,1).
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// Tune container pids limit (-1 for unlimited).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Restart policy to apply when a container exits.
    #[arg(long)]
    restart: Option<String>,
    /// Container names or ids.
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

impl UpdateArgs {
    /// The changes asked for; an error when there are none, as docker's.
    fn update_config(&self) -> Result<UpdateConfig> {
        let update = UpdateConfig {
            memory: self.memory.as_deref().map(parse_size).transpose().context("invalid --memory")?,
            memory_swap: match self.memory_swap.as_deref() {
                Some("-1") => Some(-1),
                other => other.map(parse_size).transpose().context("invalid --memory-swap")?,
            },
            nano_cpus: self.cpus.as_deref().map(parse_nano_cpus).transpose()?,
            cpu_shares: self.cpu_shares,
            cpuset_cpus: self.cpuset_cpus.clone(),
            pids_limit: self.pids_limit,
            restart_policy: self.restart.as_deref().map(parse_restart).transpose()?,
        };
        if update == UpdateConfig::default() {
            bail!("you must provide one or more flags when using this command");
        }
        Ok(update)
    }
}

/// Updates each container, printing its name as typed.
pub async fn run(berthd: &Berthd, args: &UpdateArgs) -> Result<()> {
    let update = serde_json::to_vec(&args.update_config()?)?;
    let containers = berthd.containers();
    each(&args.containers, |id| {
        let (containers, update) = (&containers, update.clone());
        async move {
            containers.update(ctx(), &UpdateContainerRequest { id, update, ..Default::default() }).await?;
            Ok(())
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_flags_given_change() {
        let args = UpdateArgs { memory: Some("128m".into()), restart: Some("always".into()), ..Default::default() };
        let update = args.update_config().unwrap();
        assert_eq!(update.memory, Some(128 << 20));
        assert_eq!(update.restart_policy.unwrap().name, "always");
        assert_eq!(update.nano_cpus, None);
        assert!(UpdateArgs::default().update_config().is_err());
        assert_eq!(
            UpdateArgs { memory_swap: Some("-1".into()), ..Default::default() }.update_config().unwrap().memory_swap,
            Some(-1)
        );
    }
}
