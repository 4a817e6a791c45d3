//! `berth network …`: create, ls, inspect, rm, connect, disconnect and prune over the Networks
//! service, printed as docker prints them.

use std::io::{self, Write};

use anyhow::{bail, Result};
use berth_proto::networks::{
    ConnectNetworkRequest, CreateNetworkRequest, DisconnectNetworkRequest, GetNetworkRequest, ListNetworksRequest,
    Network, PruneNetworksRequest, RemoveNetworkRequest,
};
use berth_proto::networks_ttrpc::NetworksClient;
use clap::Subcommand;
use serde::Serialize;
use serde_json::Value;
use ttrpc::Code;

use crate::commands::container::{each, short_id};
use crate::container_flags::parse_labels;
use crate::daemon::{ctx, print_error, AlreadyReported, Berthd};
use crate::humanize;
use crate::template::Template;

/// `berth network` verbs.
#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Create a network.
    Create(CreateArgs),
    /// List networks.
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks.
    Inspect(InspectArgs),
    /// Remove one or more networks.
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Connect a container to a network.
    Connect(ConnectArgs),
    /// Disconnect a container from a network.
    Disconnect(DisconnectArgs),
    /// Remove all unused networks.
    Prune(PruneArgs),
}

/// Create a network.
#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// Driver to manage the Network.
    #[arg(short, long, default_value = "bridge")]
    driver: String,
    /// Subnet in CIDR format that represents a network segment.
    #[arg(long)]
    subnet: Option<String>,
    /// IPv4 Gateway for the master subnet.
    #[arg(long)]
    gateway: Option<String>,
    /// Allocate container ip from a sub-range.
    #[arg(long = "ip-range")]
    ip_range: Option<String>,
    /// Restrict external access to the network.
    #[arg(long)]
    internal: bool,
    /// Set metadata on a network.
    #[arg(long)]
    label: Vec<String>,
    name: String,
}

/// List networks.
#[derive(clap::Args, Debug)]
pub struct LsArgs {
    /// Only display network IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Do not truncate the output.
    #[arg(long)]
    no_trunc: bool,
    /// Provide filter values (e.g. 'driver=bridge').
    #[arg(short, long)]
    filter: Vec<String>,
    /// Pretty-print networks using a Go template ('table', 'json', 'table TEMPLATE' or TEMPLATE;
    /// fields: ID, Name, Driver, Scope, IPv6, Internal, Labels, CreatedAt).
    #[arg(long)]
    format: Option<String>,
}

/// Display detailed information on one or more networks.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Format the output using the given Go template.
    #[arg(short, long)]
    format: Option<String>,
    #[arg(required = true, value_name = "NETWORK")]
    networks: Vec<String>,
}

/// Remove one or more networks.
#[derive(clap::Args, Debug)]
pub struct RmArgs {
    #[arg(required = true, value_name = "NETWORK")]
    networks: Vec<String>,
}

/// Connect a container to a network.
#[derive(clap::Args, Debug)]
pub struct ConnectArgs {
    /// IPv4 address (e.g., 172.30.100.104).
    #[arg(long)]
    ip: Option<String>,
    /// Add network-scoped alias for the container.
    #[arg(long)]
    alias: Vec<String>,
    network: String,
    container: String,
}

/// Disconnect a container from a network.
#[derive(clap::Args, Debug)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network.
    #[arg(short, long)]
    force: bool,
    network: String,
    container: String,
}

/// Remove all unused networks.
#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    force: bool,
}

/// Runs one `network` verb.
pub async fn run(berthd: &Berthd, command: &NetworkCommand) -> Result<()> {
    let networks = berthd.networks();
    match command {
        NetworkCommand::Create(args) => create(&networks, args).await,
        NetworkCommand::Ls(args) => ls(&networks, args).await,
        NetworkCommand::Inspect(args) => inspect(&networks, args).await,
        NetworkCommand::Rm(args) => {
            each(&args.networks, |id| {
                let networks = &networks;
                async move {
                    let request = RemoveNetworkRequest { id: id.clone(), ..Default::default() };
                    networks.remove(ctx(), &request).await.map_err(|e| no_such_network(e, &id))?;
                    Ok(())
                }
            })
            .await
        }
        NetworkCommand::Connect(args) => {
            let request = ConnectNetworkRequest {
                network: args.network.clone(),
                container: args.container.clone(),
                ip: args.ip.clone().unwrap_or_default(),
                aliases: args.alias.clone(),
                ..Default::default()
            };
            networks.connect(ctx(), &request).await?;
            Ok(())
        }
        NetworkCommand::Disconnect(args) => {
            let request = DisconnectNetworkRequest {
                network: args.network.clone(),
                container: args.container.clone(),
                force: args.force,
                ..Default::default()
            };
            networks.disconnect(ctx(), &request).await?;
            Ok(())
        }
        NetworkCommand::Prune(args) => prune(&networks, args).await,
    }
}

/// docker's client says "No such network" for a network it looked up and berthd did not find.
fn no_such_network(err: ttrpc::Error, name: &str) -> anyhow::Error {
    match &err {
        ttrpc::Error::RpcStatus(s) if s.code() == Code::NOT_FOUND => anyhow::anyhow!("No such network: {name}"),
        _ => err.into(),
    }
}

async fn create(networks: &NetworksClient, args: &CreateArgs) -> Result<()> {
    let request = CreateNetworkRequest {
        name: args.name.clone(),
        driver: args.driver.clone(),
        subnet: args.subnet.clone().unwrap_or_default(),
        gateway: args.gateway.clone().unwrap_or_default(),
        ip_range: args.ip_range.clone().unwrap_or_default(),
        internal: args.internal,
        labels: parse_labels(&args.label).into_iter().collect(),
        ..Default::default()
    };
    let created = networks.create(ctx(), &request).await?;
    writeln!(io::stdout(), "{}", created.network.id)?;
    Ok(())
}

/// Whether `net` passes one `--filter KEY=VALUE` (docker's keys: driver, id, label, name, scope,
/// type).
fn matches(net: &Network, filter: &str) -> Result<bool> {
    let Some((key, value)) = filter.split_once('=') else { bail!("bad format of filter (expected name=value)") };
    Ok(match key {
        "driver" => net.driver == value,
        "id" => net.id.starts_with(value),
        "name" => net.name.contains(value),
        "scope" => net.scope == value,
        "label" => match value.split_once('=') {
            Some((k, v)) => net.labels.get(k).is_some_and(|l| l == v),
            None => net.labels.contains_key(value),
        },
        "type" => match value {
            "builtin" => matches!(net.name.as_str(), "bridge" | "host" | "none"),
            "custom" => !matches!(net.name.as_str(), "bridge" | "host" | "none"),
            other => bail!("invalid filter: 'type'='{other}'"),
        },
        other => bail!("invalid filter '{other}'"),
    })
}

async fn ls(networks: &NetworksClient, args: &LsArgs) -> Result<()> {
    let listed = networks.list(ctx(), &ListNetworksRequest::default()).await?;
    let mut rows = Vec::new();
    for net in &listed.networks {
        let mut keep = true;
        for f in &args.filter {
            keep &= matches(net, f)?;
        }
        if keep {
            rows.push(listing_row(net, args.no_trunc));
        }
    }
    let text = if args.quiet {
        rows.iter().map(|r| format!("{}\n", r["ID"].as_str().unwrap_or_default())).collect()
    } else {
        let headers = serde_json::json!({
            "CreatedAt": "CREATED AT", "Driver": "DRIVER", "ID": "NETWORK ID", "IPv6": "IPV6",
            "Internal": "INTERNAL", "Labels": "LABELS", "Name": "NAME", "Scope": "SCOPE",
        });
        crate::commands::listing::render(&rows, args.format.as_deref(), LS_TABLE, &headers)?
    };
    io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

/// `network ls`'s default table.
const LS_TABLE: &str = "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";

/// One network as docker's `network ls` formatter sees it.
fn listing_row(net: &Network, no_trunc: bool) -> Value {
    let id = if no_trunc { net.id.as_str() } else { short_id(&net.id) };
    let labels: std::collections::BTreeMap<_, _> = net.labels.iter().collect();
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    serde_json::json!({
        "CreatedAt": humanize::utc_timestamp(net.created_at), "Driver": net.driver, "ID": id,
        "IPv6": "false", "Internal": net.internal.to_string(), "Labels": labels.join(","), "Name": net.name,
        "Scope": net.scope,
    })
}

/// docker's `network inspect` object of `net`.
fn inspect_object(net: &Network) -> Value {
    let mut object: Value = serde_json::from_slice(&net.inspect).unwrap_or(Value::Null);
    object["Created"] = Value::String(humanize::rfc3339(net.created_at));
    object
}

async fn inspect(networks: &NetworksClient, args: &InspectArgs) -> Result<()> {
    let template = args.format.as_deref().map(Template::parse).transpose()?;
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for name in &args.networks {
        let request = GetNetworkRequest { id: name.clone(), ..Default::default() };
        match networks.get(ctx(), &request).await {
            Ok(response) => found.push(inspect_object(&response.network)),
            Err(e) => errors.push(no_such_network(e, name)),
        }
    }
    let mut out = io::stdout().lock();
    match &template {
        Some(template) => {
            for object in &found {
                writeln!(out, "{}", template.render(object)?)?;
            }
        }
        None => {
            let mut serializer = serde_json::Serializer::with_formatter(
                &mut out,
                serde_json::ser::PrettyFormatter::with_indent(b"    "),
            );
            found.serialize(&mut serializer)?;
            writeln!(out)?;
        }
    }
    for err in &errors {
        print_error(err);
    }
    if !errors.is_empty() {
        return Err(AlreadyReported.into());
    }
    Ok(())
}

async fn prune(networks: &NetworksClient, args: &PruneArgs) -> Result<()> {
    if !args.force
        && !crate::commands::prune::confirm(
            "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] ",
        )?
    {
        return Ok(());
    }
    let pruned = networks.prune(ctx(), &PruneNetworksRequest::default()).await?;
    let mut out = io::stdout().lock();
    if !pruned.names.is_empty() {
        writeln!(out, "Deleted Networks:")?;
        for name in &pruned.names {
            writeln!(out, "{name}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_take_dockers_keys() {
        let net = Network { id: "abc".into(), name: "front".into(), driver: "bridge".into(), ..Default::default() };
        assert!(matches(&net, "driver=bridge").unwrap());
        assert!(matches(&net, "type=custom").unwrap());
        assert!(!matches(&net, "name=back").unwrap());
        assert!(matches(&net, "bogus=1").is_err());
    }
}
