//! What the container commands share: looking a container up, the config it was created with,
//! docker's views of a record (short id, command, STATUS text), and docker's way of acting on several containers (each name echoed on success, each failure
//! printed, status 1 if any failed).

use std::future::Future;
use std::io::{self, Write};

use anyhow::Result;
use berth_proto::container_config::CreateConfig;
use berth_proto::containers::{Container, ContainerState, GetContainerRequest};
use serde_json::Value;

use crate::daemon::{ctx, print_error, AlreadyReported, Berthd};
use crate::humanize;

/// Containers.Get: by full id, unique id prefix or name.
pub async fn get(berthd: &Berthd, name: &str) -> Result<Container> {
    let request = GetContainerRequest { id: name.to_string(), ..Default::default() };
    let response = berthd.containers().get(ctx(), &request).await?;
    Ok(response.container.into_option().unwrap_or_default())
}

/// The `CreateConfig` a container record carries (a default one if it cannot be read).
pub fn create_config(container: &Container) -> CreateConfig {
    serde_json::from_slice(&container.config).unwrap_or_default()
}

/// The parts of a container's creation flags that decide how to attach to it.
pub struct CreatedWith {
    pub tty: bool,
    pub open_stdin: bool,
}

impl CreatedWith {
    pub fn of(container: &Container) -> CreatedWith {
        let config = create_config(container);
        CreatedWith { tty: config.tty, open_stdin: config.open_stdin }
    }
}

/// Runs `operation` on each name, printing the name as typed when it succeeds and berthd's
/// error when it fails; fails (already reported) if any did.
pub async fn each<F, Fut>(names: &[String], mut operation: F) -> Result<()>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let mut failed = false;
    for name in names {
        match operation(name.clone()).await {
            Ok(()) => writeln!(io::stdout(), "{name}")?,
            Err(err) => {
                print_error(&err);
                failed = true;
            }
        }
    }
    if failed {
        return Err(AlreadyReported.into());
    }
    Ok(())
}

/// The id docker shows unless `--no-trunc`: 12 hex digits.
pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// The image's config object (`config` of the image's JSON), or null.
pub fn image_config(container: &Container) -> Value {
    let image: Value = serde_json::from_slice(&container.image_config).unwrap_or(Value::Null);
    image.get("config").cloned().unwrap_or(Value::Null)
}

/// The container's entrypoint and command as docker resolves them: the flags', else the
/// image's (a new entrypoint drops the image's Cmd).
pub fn entrypoint_and_cmd(container: &Container) -> (Vec<String>, Vec<String>) {
    let config = create_config(container);
    let image = image_config(container);
    let strings = |key: &str| -> Vec<String> {
        image
            .get(key)
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let entrypoint = config.entrypoint.clone().unwrap_or_else(|| strings("Entrypoint"));
    let cmd = match (&config.cmd, &config.entrypoint) {
        (Some(cmd), _) => cmd.clone(),
        (None, Some(_)) => Vec::new(),
        (None, None) => strings("Cmd"),
    };
    (entrypoint, cmd)
}

/// docker's Path and Args: the process's argv, from the spec, else the entrypoint and command.
pub fn process_args(container: &Container) -> Vec<String> {
    let (entrypoint, cmd) = entrypoint_and_cmd(container);
    let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if !argv.is_empty() {
        return argv;
    }
    let spec: Value = serde_json::from_slice(&container.spec).unwrap_or(Value::Null);
    spec.pointer("/process/args")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// docker's STATUS column: `Up 3 seconds`, `Up 2 minutes (Paused)`, `Exited (0) 5 seconds ago`,
/// `Created`, `Restarting (1) 2 seconds ago`, `Dead`. Times are Unix nanoseconds.
pub fn status_text(state: &ContainerState, now_nanos: i64) -> String {
    let since = |then: i64| humanize::duration(now_nanos.saturating_sub(then) / NANOS_PER_SECOND);
    match state.status.as_str() {
        "running" => format!("Up {}", since(state.started_at)),
        "paused" => format!("Up {} (Paused)", since(state.started_at)),
        "restarting" => format!("Restarting ({}) {} ago", state.exit_code, since(state.finished_at)),
        "removing" => "Removal In Progress".to_string(),
        "dead" => "Dead".to_string(),
        "exited" if state.started_at > 0 || state.finished_at > 0 => {
            format!("Exited ({}) {} ago", state.exit_code, since(state.finished_at))
        }
        "created" | "exited" => "Created".to_string(),
        other => other.to_string(),
    }
}

const NANOS_PER_SECOND: i64 = 1_000_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = NANOS_PER_SECOND;

    fn state(status: &str, started: i64, finished: i64, exit_code: i32) -> ContainerState {
        ContainerState {
            status: status.into(),
            started_at: started,
            finished_at: finished,
            exit_code,
            ..Default::default()
        }
    }

    #[test]
    fn status_column_reads_like_docker_ps() {
        let now = 1_700_000_000 * SECOND;
        assert_eq!(status_text(&state("running", now - 3 * SECOND, 0, 0), now), "Up 3 seconds");
        assert_eq!(status_text(&state("running", now, 0, 0), now), "Up Less than a second");
        assert_eq!(status_text(&state("paused", now - 120 * SECOND, 0, 0), now), "Up 2 minutes (Paused)");
        assert_eq!(
            status_text(&state("exited", now - 60 * SECOND, now - 5 * SECOND, 0), now),
            "Exited (0) 5 seconds ago"
        );
        assert_eq!(
            status_text(&state("exited", now - 9 * SECOND, now - 7200 * SECOND, 137), now),
            "Exited (137) 2 hours ago"
        );
        assert_eq!(status_text(&state("created", 0, 0, 0), now), "Created");
        assert_eq!(status_text(&state("restarting", 0, now - 2 * SECOND, 1), now), "Restarting (1) 2 seconds ago");
        assert_eq!(status_text(&state("dead", 0, 0, 0), now), "Dead");
    }

    #[test]
    fn command_comes_from_flags_else_image() {
        let image_config = br#"{"config":{"Entrypoint":["/entry"],"Cmd":["serve"]}}"#.to_vec();
        let mut container = Container { image_config, ..Default::default() };
        assert_eq!(process_args(&container), ["/entry", "serve"]);
        container.config = br#"{"image":"x","cmd":["ls","-l"]}"#.to_vec();
        assert_eq!(process_args(&container), ["/entry", "ls", "-l"]);
        container.config = br#"{"image":"x","entrypoint":["sh"]}"#.to_vec();
        assert_eq!(process_args(&container), ["sh"]);
        assert_eq!(short_id(&"a".repeat(64)), "a".repeat(12));
    }
}
