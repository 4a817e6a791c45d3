//! `berth events`: berthd's events as they happen (Events.Subscribe), one line each as
//! `docker events` prints them: `TIME TYPE ACTION ACTOR (attributes)`, e.g.
//! `2026-12-03T04:00:00.000000000Z container create 3f4e… (image=busybox, name=web)`; `--json`
//! gives berthd's envelopes as they are (containerd's topics and event objects).

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};

use anyhow::{bail, Result};
use berth_proto::containers::GetContainerRequest;
use berth_proto::containers_ttrpc::ContainersClient;
use berth_proto::system::{Envelope, SubscribeRequest};
use clap::Args;
use serde_json::Value;

use crate::daemon::{ctx, Berthd};
use crate::humanize;
use crate::reference::FamiliarName;

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// docker's filters: type=container|image, event=ACTION (start, die…), container=ID|NAME,
    /// image=NAME; or a topic prefix (e.g. /images/). Repeatable: values of one key are
    /// alternatives, different keys must all match.
    #[arg(long = "filter", short = 'f', value_name = "FILTER")]
    filters: Vec<String>,
    /// One JSON object per event ({"time":…,"namespace":…,"topic":…,"event":{…}}).
    #[arg(long)]
    json: bool,
    /// Show events since TIME (RFC 3339, Unix seconds, or a duration ago: 10m, 1h30m) that
    /// berthd still keeps (its last 1000), then live ones.
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Stream events until TIME (same forms), then end.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
}

/// Streams events until the daemon ends the stream or the user interrupts.
pub async fn run(berthd: &Berthd, args: &EventsArgs) -> Result<()> {
    let filters = Filters::parse(&args.filters)?;
    let now = humanize::now_nanos();
    let time = |value: &Option<String>| value.as_deref().map(|v| parse_time(v, now)).transpose();
    let req = SubscribeRequest {
        filters: filters.topic_prefixes.clone(),
        since: time(&args.since)?.unwrap_or(0),
        until: time(&args.until)?.unwrap_or(0),
        ..Default::default()
    };
    let mut stream = berthd.events().subscribe(ctx(), &req).await?;
    let mut containers = ContainerNames::new(berthd.containers());
    while let Some(e) = stream.recv().await? {
        let event: Value = serde_json::from_str(&e.event).unwrap_or(Value::String(e.event.clone()));
        let line = if args.json {
            if !filters.docker.is_empty() {
                let Some(docker) = DockerEvent::from_topic(&e.topic, &event) else { continue };
                if !filters.matches(&containers.attributes(docker).await) {
                    continue;
                }
            }
            serde_json::json!({ "time": e.timestamp, "namespace": e.namespace, "topic": e.topic, "event": event })
                .to_string()
        } else {
            let Some(docker) = DockerEvent::from_topic(&e.topic, &event) else { continue };
            let docker = containers.attributes(docker).await;
            if !filters.matches(&docker) {
                continue;
            }
            docker.line(&e)
        };
        let mut out = io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    Ok(())
}

/// docker's `--since`/`--until` TIME in Unix nanoseconds: RFC 3339 (or a bare date), Unix
/// seconds with an optional fraction, or a Go duration (`90s`, `10m`, `1h30m`) before `now`.
fn parse_time(value: &str, now: i64) -> Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(value) {
        return t.timestamp_nanos_opt().ok_or_else(|| anyhow::anyhow!("time {value:?} is out of range"));
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists");
        return midnight
            .and_utc()
            .timestamp_nanos_opt()
            .ok_or_else(|| anyhow::anyhow!("time {value:?} is out of range"));
    }
    if let Some((seconds, fraction)) = value.split_once('.').or(Some((value, ""))) {
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if digits(seconds) && (fraction.is_empty() || (digits(fraction) && fraction.len() <= 9)) {
            let nanos: i64 = if fraction.is_empty() { 0 } else { format!("{fraction:0<9}").parse()? };
            return Ok(seconds.parse::<i64>()?.saturating_mul(1_000_000_000).saturating_add(nanos));
        }
    }
    Ok(now.saturating_sub(go_duration_nanos(value)?))
}

/// A Go duration (`1h30m`, `90s`, `1.5h`, `500ms`) in nanoseconds.
fn go_duration_nanos(value: &str) -> Result<i64> {
    let invalid = || anyhow::anyhow!("invalid time {value:?}: use RFC 3339, Unix seconds or a duration like 10m");
    let mut rest = value;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(invalid()),
        };
        rest = &rest[unit_len..];
        total += number * unit;
    }
    Ok(total as i64)
}

/// One event in docker's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DockerEvent {
    /// `container`, `image`, or the topic's first word for what docker does not have.
    kind: String,
    /// docker's action: `create`, `start`, `die`, `destroy`, `tag`, `untag`…
    action: String,
    /// The container id, image name or digest the event is about.
    actor: String,
    /// Shown sorted by key, as docker does.
    attributes: BTreeMap<String, String>,
}

impl DockerEvent {
    /// docker's view of berthd's `topic` and event object; `None` for an event about no one
    /// (task events a shim forwards without their container, e.g. /tasks/exec-started).
    fn from_topic(topic: &str, event: &Value) -> Option<DockerEvent> {
        let field = |key: &str| event.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
        let (scope, rest) = topic.trim_start_matches('/').split_once('/').unwrap_or((topic, ""));
        let mut attributes = BTreeMap::new();
        let (kind, action, actor) = match scope {
            "containers" | "tasks" => {
                let action = match (scope, rest) {
                    ("containers", "delete") => "destroy",
                    ("tasks", "exit") => "die",
                    ("tasks", "paused") => "pause",
                    ("tasks", "resumed") => "unpause",
                    (_, action) => action,
                };
                let id = if scope == "containers" { field("id") } else { field("container_id") };
                for key in ["image", "name"] {
                    if let Some(v) = event.get(key).and_then(Value::as_str) {
                        attributes.insert(key.to_string(), v.to_string());
                    }
                }
                if let Some(code) = event.get("exit_status").and_then(Value::as_i64) {
                    attributes.insert("exitCode".into(), code.to_string());
                }
                ("container".to_string(), action.to_string(), id)
            }
            "images" => {
                let action = match rest {
                    "delete" => "untag",
                    "create" | "update" => "tag",
                    other => other,
                };
                let name = FamiliarName::parse(&field("name")).to_string();
                attributes.insert("name".into(), name.clone());
                ("image".to_string(), action.to_string(), name)
            }
            "volumes" => {
                attributes.insert("driver".into(), "local".into());
                let action = if rest == "delete" { "destroy" } else { rest };
                ("volume".to_string(), action.to_string(), field("name"))
            }
            other => {
                let actor = ["id", "digest", "key", "name"].iter().map(|k| field(k)).find(|v| !v.is_empty());
                (other.trim_end_matches('s').to_string(), rest.replace('/', " "), actor.unwrap_or_default())
            }
        };
        if actor.is_empty() {
            return None;
        }
        Some(DockerEvent { kind, action, actor, attributes })
    }

    /// `TIME TYPE ACTION ACTOR (k=v, …)`, the time as docker's RFC 3339 with nine digits.
    fn line(&self, e: &Envelope) -> String {
        let time = humanize::rfc3339_nano_fixed(e.timestamp);
        let mut line = format!("{time} {} {} {}", self.kind, self.action, self.actor);
        if !self.attributes.is_empty() {
            let attributes: Vec<String> = self.attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
            line.push_str(&format!(" ({})", attributes.join(", ")));
        }
        line
    }
}

/// The image and name of containers, for the events that carry only an id: remembered from
/// create events and looked up once per container otherwise (a container already removed, as at
/// its destroy event, is only known if an earlier event named it).
struct ContainerNames {
    client: ContainersClient,
    known: HashMap<String, BTreeMap<String, String>>,
}

impl ContainerNames {
    fn new(client: ContainersClient) -> ContainerNames {
        ContainerNames { client, known: HashMap::new() }
    }

    /// `event` with `image=` and `name=` (and the container's labels) filled in when known.
    async fn attributes(&mut self, mut event: DockerEvent) -> DockerEvent {
        if event.kind != "container" {
            return event;
        }
        if !self.known.contains_key(&event.actor) {
            let found = self.lookup(&event.actor).await;
            let from_event = event.attributes.iter().filter(|(k, _)| *k == "image" || *k == "name");
            let from_event: BTreeMap<String, String> = from_event.map(|(k, v)| (k.clone(), v.clone())).collect();
            match found {
                Some(attributes) => self.known.insert(event.actor.clone(), attributes),
                None if !from_event.is_empty() => self.known.insert(event.actor.clone(), from_event),
                None => None,
            };
        }
        if let Some(known) = self.known.get_mut(&event.actor) {
            for (k, v) in known.iter() {
                event.attributes.entry(k.clone()).or_insert_with(|| v.clone());
            }
            // A rename names the container anew for the events that follow.
            if let Some(name) = event.attributes.get("name") {
                known.insert("name".into(), name.clone());
            }
        }
        event
    }

    async fn lookup(&self, id: &str) -> Option<BTreeMap<String, String>> {
        let request = GetContainerRequest { id: id.to_string(), ..Default::default() };
        let container = self.client.get(ctx(), &request).await.ok()?.container.into_option()?;
        let mut attributes: BTreeMap<String, String> = container.labels.into_iter().collect();
        attributes.insert("image".into(), container.image);
        attributes.insert("name".into(), container.name);
        Some(attributes)
    }
}

/// `--filter` values: topic prefixes go to berthd; docker's `key=value` filters are applied here.
#[derive(Debug, Default)]
struct Filters {
    topic_prefixes: Vec<String>,
    docker: BTreeMap<String, Vec<String>>,
}

impl Filters {
    fn parse(values: &[String]) -> Result<Filters> {
        let mut filters = Filters::default();
        for value in values {
            if value.starts_with('/') {
                filters.topic_prefixes.push(value.clone());
                continue;
            }
            let Some((key, wanted)) = value.split_once('=') else {
                bail!("bad format of filter (expected name=value)");
            };
            if !matches!(key, "type" | "event" | "container" | "image") {
                bail!("invalid filter '{key}'");
            }
            filters.docker.entry(key.to_string()).or_default().push(wanted.to_string());
        }
        Ok(filters)
    }

    /// docker's rule: every key matches, each by any of its values.
    fn matches(&self, event: &DockerEvent) -> bool {
        self.docker.iter().all(|(key, wanted)| {
            wanted.iter().any(|w| match key.as_str() {
                "type" => event.kind == *w,
                "event" => event.action == *w,
                "container" => {
                    event.kind == "container"
                        && (event.actor == *w || event.attributes.get("name").is_some_and(|n| n == w))
                }
                "image" => {
                    event.attributes.get("image").is_some_and(|i| i == w)
                        || (event.kind == "image" && event.actor == *w)
                }
                _ => false,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(topic: &str, json: &str) -> Option<DockerEvent> {
        DockerEvent::from_topic(topic, &serde_json::from_str(json).expect("test JSON"))
    }

    #[test]
    fn container_and_task_topics_read_as_docker_container_events() {
        let create = event("/containers/create", r#"{"id":"c1","image":"busybox","name":"web"}"#).expect("create");
        assert_eq!(
            (create.kind.as_str(), create.action.as_str(), create.actor.as_str()),
            ("container", "create", "c1")
        );
        assert_eq!(create.attributes.get("name").map(String::as_str), Some("web"));
        let die = event("/tasks/exit", r#"{"container_id":"c1","exit_status":3}"#).expect("exit");
        assert_eq!((die.action.as_str(), die.attributes.get("exitCode").map(String::as_str)), ("die", Some("3")));
        assert_eq!(event("/containers/delete", r#"{"id":"c1"}"#).expect("delete").action, "destroy");
        assert_eq!(event("/tasks/start", r#"{"container_id":"c1","pid":7}"#).expect("start").action, "start");
        assert!(event("/tasks/exec-started", r#"{"type":"x"}"#).is_none(), "an event about no container");
    }

    #[test]
    fn a_line_has_docker_layout_with_sorted_attributes() {
        let mut e = event("/tasks/exit", r#"{"container_id":"c1","exit_status":0}"#).expect("exit");
        e.attributes.insert("name".into(), "web".into());
        e.attributes.insert("image".into(), "busybox".into());
        let envelope = Envelope { timestamp: 1_796_270_400_000_000_001, ..Default::default() };
        assert_eq!(
            e.line(&envelope),
            "2026-12-03T04:00:00.000000001Z container die c1 (exitCode=0, image=busybox, name=web)"
        );
    }

    #[test]
    fn volume_topics_read_as_dockers_volume_create_and_destroy() {
        let e = event("/volumes/delete", r#"{"name":"data"}"#).expect("delete");
        assert_eq!((e.kind.as_str(), e.action.as_str(), e.actor.as_str()), ("volume", "destroy", "data"));
        assert_eq!(e.attributes["driver"], "local");
        assert_eq!(event("/volumes/create", r#"{"name":"data"}"#).expect("create").action, "create");
    }

    #[test]
    fn image_topics_read_as_tag_and_untag_of_the_familiar_name() {
        let e = event("/images/delete", r#"{"name":"docker.io/library/busybox:latest"}"#).expect("delete");
        assert_eq!((e.kind.as_str(), e.action.as_str(), e.actor.as_str()), ("image", "untag", "busybox:latest"));
    }

    #[test]
    fn filters_of_one_key_are_alternatives_and_keys_all_apply() {
        let filters = Filters::parse(&["type=container".into(), "event=start".into(), "event=die".into()])
            .expect("valid filters");
        let start = event("/tasks/start", r#"{"container_id":"c1"}"#).expect("start");
        let create = event("/containers/create", r#"{"id":"c1"}"#).expect("create");
        let untag = event("/images/delete", r#"{"name":"localhost/x:1"}"#).expect("untag");
        assert!(filters.matches(&start));
        assert!(!filters.matches(&create));
        assert!(!filters.matches(&untag));
        assert!(Filters::parse(&["colour=red".into()]).is_err());
        assert_eq!(Filters::parse(&["/images/".into()]).expect("prefix").topic_prefixes, ["/images/"]);
    }

    #[test]
    fn since_and_until_take_rfc3339_unix_seconds_and_durations_ago() {
        let now = 1_700_000_000 * 1_000_000_000;
        assert_eq!(parse_time("2023-11-14T22:13:20Z", 0).unwrap(), now);
        assert_eq!(parse_time("2023-11-14", 0).unwrap(), 1_699_920_000 * 1_000_000_000);
        assert_eq!(parse_time("1700000000", 0).unwrap(), now);
        assert_eq!(parse_time("1700000000.5", 0).unwrap(), now + 500_000_000);
        assert_eq!(parse_time("10m", now).unwrap(), now - 600 * 1_000_000_000);
        assert_eq!(parse_time("1h30m", now).unwrap(), now - 5400 * 1_000_000_000);
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("", now).is_err());
    }
}
