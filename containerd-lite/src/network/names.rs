//! The embedded DNS's view of the containers: a container on a user-defined network resolves
//! the names, short ids and aliases of the running containers it shares such a network with,
//! from their records (as docker's embedded DNS answers from its endpoints).

use std::net::IpAddr;

use super::dns::NameTable;
use super::Endpoint;
use crate::container::{ContainerRecord, ContainerStore};

/// [`NameTable`] over berthd's container records.
pub struct ContainerNames {
    pub containers: ContainerStore,
}

/// Whether `name` (lower case) names the container `r` with endpoint `ep`.
fn names(r: &ContainerRecord, ep: &Endpoint, name: &str) -> bool {
    r.name.to_lowercase() == name
        || r.id == name
        || r.id.get(..12) == Some(name)
        || ep.aliases.iter().any(|a| a.to_lowercase() == name)
}

impl ContainerNames {
    /// Every live endpoint on a user-defined network that `asker` is also on.
    fn neighbours(&self, asker: &str) -> Vec<(ContainerRecord, Endpoint)> {
        let Ok(all) = self.containers.list() else { return Vec::new() };
        let Some(me) = all.iter().find(|r| r.id == asker) else { return Vec::new() };
        let shared: Vec<&str> =
            me.networks.iter().filter(|(name, _)| *name != "bridge").map(|(_, ep)| ep.network_id.as_str()).collect();
        let mut out = Vec::new();
        for r in &all {
            for ep in r.networks.values() {
                if shared.contains(&ep.network_id.as_str()) && !ep.ip_address.is_empty() {
                    out.push((r.clone(), ep.clone()));
                }
            }
        }
        out
    }
}

impl NameTable for ContainerNames {
    fn lookup(&self, asker: &str, name: &str) -> Vec<IpAddr> {
        self.neighbours(asker)
            .iter()
            .filter(|(r, ep)| names(r, ep, name))
            .filter_map(|(_, ep)| ep.ip_address.parse().ok())
            .collect()
    }

    fn reverse(&self, asker: &str, addr: IpAddr) -> Option<String> {
        let addr = addr.to_string();
        self.neighbours(asker).into_iter().find(|(_, ep)| ep.ip_address == addr).map(|(r, _)| r.name)
    }
}
