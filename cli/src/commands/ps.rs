//! `berth ps`: Containers.List as docker's table (CONTAINER ID, IMAGE, COMMAND, CREATED, STATUS,
//! PORTS, NAMES), ids only, JSON lines or a Go template, newest first, with docker's filters.

use std::collections::BTreeMap;
use std::io::{self, Write};

use anyhow::{bail, Result};
use berth_proto::containers::{Container, ListContainersRequest};
use serde_json::{json, Value};

use crate::commands::container::{get, process_args, short_id, status_text};
use crate::daemon::{ctx, Berthd};
use crate::humanize;
use crate::reference::with_default_tag;

/// List containers.
#[derive(clap::Args, Debug, Default)]
pub struct PsArgs {
    /// Show all containers (default shows just running).
    #[arg(short, long)]
    all: bool,
    /// Only display container IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Show n last created containers (includes all states).
    #[arg(short = 'n', long = "last", value_name = "N", allow_hyphen_values = true)]
    last: Option<i64>,
    /// Show the latest created container (includes all states).
    #[arg(short, long)]
    latest: bool,
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Filter output (status=, name=, label=, ancestor=, id=, exited=, before=, since=).
    #[arg(short, long = "filter", value_name = "KEY=VALUE")]
    filter: Vec<String>,
    /// Format output: table, json, 'table TEMPLATE' or a Go template ('{{.ID}} {{.Names}}').
    #[arg(long)]
    format: Option<String>,
    /// Display total file sizes (a SIZE column; not measured by berth yet: 0B).
    #[arg(short, long)]
    size: bool,
}

/// Prints the containers.
pub async fn run(berthd: &Berthd, args: &PsArgs) -> Result<()> {
    let mut filters = Filters::parse(&args.filter)?;
    filters.resolve_times(berthd).await?;
    let last = if args.latest { Some(1) } else { args.last.filter(|n| *n > 0) };
    let all = args.all || last.is_some() || filters.implies_all();
    let response = berthd.containers().list(ctx(), &ListContainersRequest { all, ..Default::default() }).await?;
    let mut containers: Vec<Container> = response.containers.into_iter().filter(|c| filters.matches(c)).collect();
    containers.sort_by_key(|c| std::cmp::Reverse(c.created_at));
    if let Some(last) = last {
        containers.truncate(last as usize);
    }
    let now = humanize::now_nanos();
    let rows: Vec<Value> = containers.iter().map(|c| row(c, now, args.no_trunc)).collect();
    let output = render(&rows, args)?;
    io::stdout().lock().write_all(output.as_bytes())?;
    Ok(())
}

/// The lines `ps` prints for `rows` with `args`' output options.
fn render(rows: &[Value], args: &PsArgs) -> Result<String> {
    if args.quiet {
        return Ok(rows.iter().map(|r| format!("{}\n", r["ID"].as_str().unwrap_or_default())).collect());
    }
    let default_table = if args.size { format!("{DEFAULT_TABLE}\t{{{{.Size}}}}") } else { DEFAULT_TABLE.to_string() };
    super::listing::render(rows, args.format.as_deref(), &default_table, &headers())
}

/// docker's default `ps` table.
const DEFAULT_TABLE: &str = "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

/// The header of each field, as docker names them.
fn headers() -> Value {
    json!({
        "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
        "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
        "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
        "LocalVolumes": "LOCAL VOLUMES", "Platform": "PLATFORM",
    })
}

/// One container as docker's `ps` formatter sees it (also its `--format json` object).
fn row(container: &Container, now: i64, no_trunc: bool) -> Value {
    let state = container.state.as_ref().cloned().unwrap_or_default();
    let config = crate::commands::container::create_config(container);
    let command = process_args(container).join(" ");
    let command = if no_trunc { command } else { ellipsis(&command, 20) };
    let id = if no_trunc { container.id.as_str() } else { short_id(&container.id) };
    let image = match container.image.strip_prefix("sha256:") {
        Some(hex) if !no_trunc => short_id(hex).to_string(),
        _ => container.image.clone(),
    };
    let labels: Vec<String> = container.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mounts: Vec<String> =
        config.mounts.iter().map(|m| if m.source.is_empty() { m.target.clone() } else { m.source.clone() }).collect();
    json!({
        "Command": serde_json::to_string(&command).unwrap_or_default(),
        "CreatedAt": humanize::utc_timestamp(container.created_at),
        "ID": id,
        "Image": image,
        "Labels": labels.join(","),
        "LocalVolumes": "0",
        "Mounts": mounts.join(","),
        "Names": container.name,
        "Networks": networks(container).unwrap_or_else(|| config.network.unwrap_or_default()),
        "Ports": "",
        "RunningFor": humanize::since(container.created_at, now),
        "Size": "0B",
        "State": state.status,
        "Status": status_text(&state, now),
    })
}

/// docker's `Ellipsis`: at most `width` characters, the last one `…` when cut.
/// docker's NETWORKS: the names of the networks in the container's NetworkSettings.
fn networks(container: &Container) -> Option<String> {
    let settings: Value = serde_json::from_slice(&container.network_settings).ok()?;
    let names: Vec<&String> = settings["Networks"].as_object()?.keys().collect();
    (!names.is_empty()).then(|| names.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(","))
}

fn ellipsis(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(width - 1).collect();
        cut.push('…');
        cut
    }
}

/// `--filter`s: values of one key are alternatives, different keys must all match. `before=`
/// and `since=` name containers whose creation times [`Filters::resolve_times`] looks up.
#[derive(Debug, Default)]
struct Filters {
    by_key: BTreeMap<String, Vec<String>>,
    /// Only containers created before this (Unix nanoseconds).
    created_before: Option<i64>,
    /// Only containers created after this.
    created_after: Option<i64>,
}

const STATUSES: [&str; 7] = ["created", "restarting", "running", "removing", "paused", "exited", "dead"];

impl Filters {
    fn parse(filters: &[String]) -> Result<Filters> {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for filter in filters {
            let Some((key, value)) = filter.split_once('=') else {
                bail!("bad format of filter (expected name=value): {filter}");
            };
            match key {
                "status" if !STATUSES.contains(&value) => {
                    bail!("invalid filter 'status={value}': must be one of {}", STATUSES.join(", "))
                }
                "exited" if value.parse::<i32>().is_err() => bail!("invalid filter 'exited={value}'"),
                "status" | "name" | "label" | "ancestor" | "id" | "exited" | "before" | "since" => {}
                _ => bail!("invalid filter '{key}'"),
            }
            map.entry(key.to_string()).or_default().push(value.to_string());
        }
        Ok(Filters { by_key: map, ..Default::default() })
    }

    /// The creation times of the containers `before=` and `since=` name (the earliest before,
    /// the latest since, when given several).
    async fn resolve_times(&mut self, berthd: &Berthd) -> Result<()> {
        for (key, values) in &self.by_key {
            for value in values {
                let created = match key.as_str() {
                    "before" | "since" => get(berthd, value).await?.created_at,
                    _ => continue,
                };
                let bound = if key == "before" { &mut self.created_before } else { &mut self.created_after };
                *bound = Some(match (*bound, key.as_str()) {
                    (Some(old), "before") => old.min(created),
                    (Some(old), _) => old.max(created),
                    (None, _) => created,
                });
            }
        }
        Ok(())
    }

    /// docker lists stopped containers when asked for them by state or exit code.
    fn implies_all(&self) -> bool {
        self.by_key.contains_key("status") || self.by_key.contains_key("exited")
    }

    fn matches(&self, container: &Container) -> bool {
        let state = container.state.as_ref().cloned().unwrap_or_default();
        if self.created_before.is_some_and(|t| container.created_at >= t)
            || self.created_after.is_some_and(|t| container.created_at <= t)
        {
            return false;
        }
        self.by_key.iter().all(|(key, values)| {
            values.iter().any(|value| match key.as_str() {
                "before" | "since" => true,
                "status" => state.status == *value,
                "name" => container.name.contains(value.trim_start_matches('/')),
                "id" => container.id.starts_with(value.as_str()),
                "exited" => state.status == "exited" && value.parse() == Ok(state.exit_code),
                "label" => match value.split_once('=') {
                    Some((k, v)) => container.labels.get(k).is_some_and(|l| l == v),
                    None => container.labels.contains_key(value),
                },
                "ancestor" => is_ancestor(container, value),
                _ => false,
            })
        })
    }
}

/// Whether `image` (a name with or without tag, or an image id prefix) is the container's.
fn is_ancestor(container: &Container, image: &str) -> bool {
    let hex = container.image_id.trim_start_matches("sha256:");
    with_default_tag(&container.image) == with_default_tag(image)
        || (image.len() >= 4 && hex.starts_with(image.trim_start_matches("sha256:")))
        || container.image_id == image
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::containers::ContainerState;

    const SECOND: i64 = 1_000_000_000;

    fn container(name: &str, status: &str, exit_code: i32) -> Container {
        Container {
            id: "7".repeat(64),
            name: name.to_string(),
            image: "busybox".to_string(),
            image_id: format!("sha256:{}", "ab".repeat(32)),
            labels: [("app".to_string(), "web".to_string())].into_iter().collect(),
            config: br#"{"image":"busybox","cmd":["sh","-c","while true; do sleep 1; done"]}"#.to_vec(),
            created_at: 1_700_000_000 * SECOND,
            state: Some(ContainerState {
                status: status.to_string(),
                exit_code,
                started_at: 1_700_000_000 * SECOND,
                finished_at: 1_700_000_005 * SECOND,
                ..Default::default()
            })
            .into(),
            ..Default::default()
        }
    }

    fn filters(args: &[&str]) -> Filters {
        Filters::parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("valid filters")
    }

    #[test]
    fn filters_match_status_name_label_ancestor_and_id() {
        let web = container("web", "running", 0);
        let job = container("job", "exited", 3);
        assert!(filters(&["status=running"]).matches(&web));
        assert!(!filters(&["status=running"]).matches(&job));
        assert!(filters(&["status=running", "status=exited"]).matches(&job));
        assert!(filters(&["name=we"]).matches(&web));
        assert!(!filters(&["name=web", "status=exited"]).matches(&web));
        assert!(filters(&["label=app"]).matches(&web));
        assert!(filters(&["label=app=web"]).matches(&web));
        assert!(!filters(&["label=app=db"]).matches(&web));
        assert!(filters(&["ancestor=busybox"]).matches(&web));
        assert!(filters(&["ancestor=busybox:latest"]).matches(&web));
        assert!(filters(&["ancestor=abab"]).matches(&web));
        assert!(!filters(&["ancestor=alpine"]).matches(&web));
        assert!(filters(&[&format!("id={}", &web.id[..5])]).matches(&web));
        assert!(filters(&["exited=3"]).matches(&job));
        assert!(!filters(&["exited=0"]).matches(&job));
        assert!(filters(&["status=exited"]).implies_all());
        let mut before = filters(&["before=x"]);
        before.created_before = Some(web.created_at + 1);
        assert!(before.matches(&web));
        before.created_before = Some(web.created_at);
        assert!(!before.matches(&web));
        let mut since = filters(&["since=x"]);
        since.created_after = Some(web.created_at - 1);
        assert!(since.matches(&web));
        since.created_after = Some(web.created_at);
        assert!(!since.matches(&web));
    }

    #[test]
    fn bad_filters_are_refused() {
        assert!(Filters::parse(&["status=sleeping".into()]).is_err());
        assert!(Filters::parse(&["colour=red".into()]).is_err());
        assert!(Filters::parse(&["status".into()]).is_err());
    }

    #[test]
    fn table_has_docker_columns_short_ids_and_quoted_truncated_commands() {
        let now = 1_700_000_010 * SECOND;
        let rows = [row(&container("web", "running", 0), now, false)];
        let out = render(&rows, &PsArgs::default()).expect("renders");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "CONTAINER ID   IMAGE     COMMAND                  CREATED          STATUS          PORTS     NAMES"
        );
        assert_eq!(
            lines[1],
            "777777777777   busybox   \"sh -c while true; d…\"   10 seconds ago   Up 10 seconds             web"
        );
    }

    #[test]
    fn quiet_json_and_template_formats() {
        let now = 1_700_000_010 * SECOND;
        let rows = [row(&container("web", "exited", 1), now, true)];
        let quiet = render(&rows, &PsArgs { quiet: true, ..Default::default() }).unwrap();
        assert_eq!(quiet, format!("{}\n", "7".repeat(64)));
        let template =
            render(&rows, &PsArgs { format: Some("{{.Names}} {{.Status}}".into()), ..Default::default() }).unwrap();
        assert_eq!(template, "web Exited (1) 5 seconds ago\n");
        let table =
            render(&rows, &PsArgs { format: Some("table {{.Names}}\\t{{.State}}".into()), ..Default::default() })
                .unwrap();
        assert_eq!(table, "NAMES     STATE\nweb       exited\n");
        let json = render(&rows, &PsArgs { format: Some("json".into()), ..Default::default() }).unwrap();
        let object: Value = serde_json::from_str(json.trim()).unwrap();
        assert_eq!(object["Names"], "web");
        assert_eq!(object["Command"], "\"sh -c while true; do sleep 1; done\"");
    }
}
