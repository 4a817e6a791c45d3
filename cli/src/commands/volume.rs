//! `berth volume create|ls|inspect|rm|prune`: the Volumes service, printed as docker's CLI does.

use std::collections::BTreeMap;
use std::io::{self, Write};

use anyhow::Result;
use berth_proto::volumes::{
    CreateVolumeRequest, GetVolumeRequest, ListVolumesRequest, PruneVolumesRequest, RemoveVolumeRequest, Volume,
};
use serde::Serialize;

use crate::commands::image_prune::confirm;
use crate::commands::listing;
use crate::container_flags::{parse_key_values, parse_labels};
use crate::daemon::{ctx, print_error, AlreadyReported, Berthd, UnknownCommand};
use crate::humanize;
use crate::template::Template;

/// go-units' `HumanSize` precision, which docker's "Total reclaimed space" uses.
const RECLAIMED_PRECISION: usize = 4;
const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// Manage volumes.
#[derive(clap::Subcommand, Debug)]
pub enum VolumeCommand {
    /// Create a volume.
    Create(CreateArgs),
    /// List volumes.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes.
    Inspect(InspectArgs),
    /// Remove one or more volumes. You cannot remove a volume that is in use by a container.
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove all unused local volumes.
    Prune(PruneArgs),
    /// A `volume` verb berth does not have: said so, with no guess at a similar one.
    #[command(external_subcommand)]
    Unknown(Vec<String>),
}

/// `volume create`.
#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// Specify volume driver name (only `local`).
    #[arg(short, long, default_value = "local")]
    driver: String,
    /// Set metadata for a volume.
    #[arg(long)]
    label: Vec<String>,
    /// Set driver specific options (the local driver of berth takes none).
    #[arg(short, long = "opt")]
    opt: Vec<String>,
    /// The volume's name; a random one when omitted.
    #[arg(value_name = "VOLUME")]
    name: Option<String>,
}

/// `volume ls`.
#[derive(clap::Args, Debug)]
pub struct LsArgs {
    /// Only display volume names.
    #[arg(short, long)]
    quiet: bool,
    /// Provide filter values (e.g. 'dangling=true', 'name=data', 'label=tier=db').
    #[arg(short, long)]
    filter: Vec<String>,
    /// Pretty-print volumes using a Go template ('table', 'json', 'table TEMPLATE' or TEMPLATE;
    /// fields: Driver, Name, Mountpoint, Scope, Labels, Links, Size).
    #[arg(long)]
    format: Option<String>,
}

/// `volume inspect`.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Format the output using the given Go template.
    #[arg(short, long)]
    format: Option<String>,
    #[arg(required = true, value_name = "VOLUME")]
    volumes: Vec<String>,
}

/// `volume rm`.
#[derive(clap::Args, Debug)]
pub struct RmArgs {
    /// Do not fail on a volume that does not exist (a volume in use is still refused).
    #[arg(short, long)]
    force: bool,
    #[arg(required = true, value_name = "VOLUME")]
    volumes: Vec<String>,
}

/// `volume prune`.
#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    force: bool,
    /// Provide filter values (e.g. 'label=<label>').
    #[arg(long)]
    filter: Vec<String>,
}

/// docker's `volume inspect` object, in docker's key order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct InspectedVolume {
    created_at: String,
    driver: String,
    labels: Option<BTreeMap<String, String>>,
    mountpoint: String,
    name: String,
    options: Option<BTreeMap<String, String>>,
    scope: String,
}

impl From<&Volume> for InspectedVolume {
    fn from(v: &Volume) -> InspectedVolume {
        // docker keeps an anonymous volume's empty maps as null, and a created one's as {}.
        let map = |m: &std::collections::HashMap<String, String>| {
            (!(v.anonymous && m.is_empty())).then(|| m.clone().into_iter().collect())
        };
        InspectedVolume {
            created_at: humanize::rfc3339(v.created_at - v.created_at.rem_euclid(NANOS_PER_SECOND)),
            driver: v.driver.clone(),
            labels: map(&v.labels),
            mountpoint: v.mountpoint.clone(),
            name: v.name.clone(),
            options: map(&v.options),
            scope: v.scope.clone(),
        }
    }
}

/// `volume ls`'s default table.
const LS_TABLE: &str = "{{.Driver}}\t{{.Name}}";

/// One volume as docker's `volume ls` formatter sees it (20.10 reports no size or link count
/// in a listing: "N/A").
fn listing_row(v: &Volume) -> serde_json::Value {
    let labels: Vec<String> =
        v.labels.iter().collect::<BTreeMap<_, _>>().iter().map(|(k, val)| format!("{k}={val}")).collect();
    serde_json::json!({
        "Driver": v.driver, "Labels": labels.join(","), "Links": "N/A", "Mountpoint": v.mountpoint,
        "Name": v.name, "Scope": v.scope, "Size": "N/A",
    })
}

/// Runs a `volume` subcommand.
pub async fn run(berthd: &Berthd, command: &VolumeCommand) -> Result<()> {
    let volumes = berthd.volumes();
    let mut out = io::stdout().lock();
    match command {
        VolumeCommand::Create(args) => {
            let request = CreateVolumeRequest {
                name: args.name.clone().unwrap_or_default(),
                driver: args.driver.clone(),
                labels: parse_labels(&args.label).into_iter().collect(),
                options: parse_key_values(&args.opt, "--opt")?.into_iter().collect(),
                ..Default::default()
            };
            let created = volumes.create(ctx(), &request).await?;
            writeln!(out, "{}", created.volume.name)?;
        }
        VolumeCommand::Ls(args) => {
            let listed =
                volumes.list(ctx(), &ListVolumesRequest { filters: args.filter.clone(), ..Default::default() }).await?;
            if args.quiet {
                for v in &listed.volumes {
                    writeln!(out, "{}", v.name)?;
                }
            } else {
                let rows: Vec<serde_json::Value> = listed.volumes.iter().map(listing_row).collect();
                let headers = serde_json::json!({
                    "Driver": "DRIVER", "Labels": "LABELS", "Links": "LINKS", "Mountpoint": "MOUNTPOINT",
                    "Name": "VOLUME NAME", "Scope": "SCOPE", "Size": "SIZE",
                });
                let text = listing::render(&rows, args.format.as_deref(), LS_TABLE, &headers)?;
                out.write_all(text.as_bytes())?;
            }
        }
        VolumeCommand::Inspect(args) => {
            let template = args.format.as_deref().map(Template::parse).transpose()?;
            let mut found = Vec::new();
            let mut failed = false;
            for name in &args.volumes {
                match volumes.get(ctx(), &GetVolumeRequest { name: name.clone(), ..Default::default() }).await {
                    Ok(response) => found.push(InspectedVolume::from(&*response.volume)),
                    Err(err) => {
                        report(err, name);
                        failed = true;
                    }
                }
            }
            match &template {
                Some(template) => {
                    for v in &found {
                        writeln!(out, "{}", template.render(&serde_json::to_value(v)?)?)?;
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
            if failed {
                return Err(AlreadyReported.into());
            }
        }
        VolumeCommand::Rm(args) => {
            let mut failed = false;
            for name in &args.volumes {
                let request = RemoveVolumeRequest { name: name.clone(), force: args.force, ..Default::default() };
                match volumes.remove(ctx(), &request).await {
                    Ok(_) => writeln!(out, "{name}")?,
                    Err(err) => {
                        report(err, name);
                        failed = true;
                    }
                }
            }
            if failed {
                return Err(AlreadyReported.into());
            }
        }
        VolumeCommand::Prune(args) => {
            if !args.force
                && !confirm(
                    "WARNING! This will remove all local volumes not used by at least one container.\nAre you sure you want to continue? [y/N] ",
                )?
            {
                return Ok(());
            }
            let pruned = volumes
                .prune(ctx(), &PruneVolumesRequest { filters: args.filter.clone(), ..Default::default() })
                .await?;
            out.write_all(prune_report(&pruned.deleted, pruned.space_reclaimed).as_bytes())?;
        }
        VolumeCommand::Unknown(argv) => {
            return Err(UnknownCommand(format!("volume {}", argv.first().map_or("", String::as_str))).into())
        }
    }
    Ok(())
}

/// Prints a failure about volume `name` as docker's CLI does: its own line for a missing volume,
/// the daemon's message otherwise.
fn report(err: ttrpc::Error, name: &str) {
    match &err {
        ttrpc::Error::RpcStatus(status) if status.code() == ttrpc::Code::NOT_FOUND => {
            print_error(&anyhow::anyhow!("No such volume: {name}"))
        }
        _ => print_error(&err.into()),
    }
}

/// What docker prints after a volume prune.
pub fn prune_report(deleted: &[String], reclaimed: u64) -> String {
    let mut report = String::new();
    if !deleted.is_empty() {
        report.push_str("Deleted Volumes:\n");
        for name in deleted {
            report.push_str(name);
            report.push('\n');
        }
        report.push('\n');
    }
    let reclaimed = humanize::size(i64::try_from(reclaimed).unwrap_or(i64::MAX), RECLAIMED_PRECISION);
    report.push_str(&format!("Total reclaimed space: {reclaimed}\n"));
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_report_lists_volumes_then_the_space() {
        assert_eq!(prune_report(&[], 0), "Total reclaimed space: 0B\n");
        assert_eq!(
            prune_report(&["a1".to_string(), "b2".to_string()], 1_500),
            "Deleted Volumes:\na1\nb2\n\nTotal reclaimed space: 1.5kB\n"
        );
    }

    #[test]
    fn inspect_shows_dockers_keys_and_nulls_for_anonymous_volumes() {
        let volume = Volume {
            name: "x".repeat(64),
            driver: "local".into(),
            scope: "local".into(),
            created_at: 1_700_000_000_123_456_789,
            anonymous: true,
            ..Default::default()
        };
        let json = serde_json::to_value(InspectedVolume::from(&volume)).expect("json");
        assert_eq!(json["CreatedAt"], "2023-11-14T22:13:20Z");
        assert!(json["Labels"].is_null());
        let named = Volume { anonymous: false, ..volume };
        assert_eq!(serde_json::to_value(InspectedVolume::from(&named)).expect("json")["Labels"], serde_json::json!({}));
    }
}
