//! The Dockerfile instructions that change only an image's config (ENV, CMD, LABEL, ...): what
//! a build step of theirs does, and what `commit --change` applies.

use anyhow::Result;
use serde_json::{json, Map, Value};

use super::dockerfile::{self, Command, Healthcheck, Instruction, ShellOrExec};
use super::Invalid;

/// The shell of RUN, CMD and ENTRYPOINT in shell form unless SHELL says otherwise.
pub fn default_shell() -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into()]
}

/// A shell-form command as the argv it runs: the shell, then the command line.
pub fn argv(cmd: &ShellOrExec, shell: &[String]) -> Vec<String> {
    match cmd {
        ShellOrExec::Exec(argv) => argv.clone(),
        ShellOrExec::Shell(line) => shell.iter().cloned().chain([line.clone()]).collect(),
    }
}

/// Whether `instruction` only changes the config (no filesystem change, no layer).
pub fn is_config_only(command: &Command) -> bool {
    !matches!(command, Command::Run(_) | Command::Copy(_) | Command::Add(_) | Command::Workdir(_))
}

/// What one config instruction changes in `config` (the image config's `config` object).
/// `shell` is the stage's SHELL; `cmd_set` tells whether this stage set CMD (ENTRYPOINT resets
/// an inherited one). `author` receives MAINTAINER.
pub struct Target<'a> {
    pub config: &'a mut Map<String, Value>,
    pub shell: &'a mut Vec<String>,
    pub cmd_set: &'a mut bool,
    pub author: &'a mut Option<String>,
}

fn strings(config: &Map<String, Value>, key: &str) -> Vec<String> {
    config
        .get(key)
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn object(config: &mut Map<String, Value>, key: &str) -> Map<String, Value> {
    config.get(key).and_then(Value::as_object).cloned().unwrap_or_default()
}

/// Sets `KEY=VALUE` in an environment list, replacing an earlier value of KEY in place.
pub fn set_env(env: &mut Vec<String>, key: &str, value: &str) {
    let entry = format!("{key}={value}");
    match env.iter_mut().find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key) {
        Some(slot) => *slot = entry,
        None => env.push(entry),
    }
}

/// docker's port spec of EXPOSE: `80` is `80/tcp`; `80-82/udp` is three ports.
fn exposed_ports(spec: &str) -> Result<Vec<String>> {
    let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(Invalid(format!("invalid proto: {proto}")).into());
    }
    let parse = |p: &str| p.parse::<u16>().map_err(|_| Invalid(format!("invalid containerPort: {p}")));
    let (first, last) = match ports.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => (parse(ports)?, parse(ports)?),
    };
    if last < first {
        return Err(Invalid(format!("invalid range specified for container port: {ports}")).into());
    }
    Ok((first..=last).map(|p| format!("{p}/{proto}")).collect())
}

/// Applies config instruction `instruction` (already expanded) to `target`.
pub fn apply(instruction: &Instruction, target: Target<'_>) -> Result<()> {
    let Target { config, shell, cmd_set, author } = target;
    match &instruction.command {
        Command::Env(pairs) => {
            let mut env = strings(config, "Env");
            for (k, v) in pairs {
                set_env(&mut env, k, v);
            }
            config.insert("Env".into(), json!(env));
        }
        Command::Label(pairs) => {
            let mut labels = object(config, "Labels");
            for (k, v) in pairs {
                labels.insert(k.clone(), json!(v));
            }
            config.insert("Labels".into(), Value::Object(labels));
        }
        Command::Cmd(cmd) => {
            config.insert("Cmd".into(), json!(argv(cmd, shell)));
            *cmd_set = true;
        }
        Command::Entrypoint(cmd) => {
            config.insert("Entrypoint".into(), json!(argv(cmd, shell)));
            if !*cmd_set {
                config.insert("Cmd".into(), Value::Null);
            }
        }
        Command::Expose(specs) => {
            let mut ports = object(config, "ExposedPorts");
            for spec in specs {
                for port in exposed_ports(spec)? {
                    ports.insert(port, json!({}));
                }
            }
            config.insert("ExposedPorts".into(), Value::Object(ports));
        }
        Command::Volume(paths) => {
            let mut volumes = object(config, "Volumes");
            for path in paths {
                if path.trim().is_empty() {
                    return Err(Invalid("VOLUME specified can not be an empty string".into()).into());
                }
                volumes.insert(path.clone(), json!({}));
            }
            config.insert("Volumes".into(), Value::Object(volumes));
        }
        Command::User(user) => {
            config.insert("User".into(), json!(user));
        }
        Command::StopSignal(signal) => {
            crate::task::parse_signal(signal).map_err(|e| Invalid(format!("{e:#}")))?;
            config.insert("StopSignal".into(), json!(signal));
        }
        Command::Shell(words) => {
            *shell = words.clone();
            config.insert("Shell".into(), json!(words));
        }
        Command::Onbuild(trigger) => {
            let mut triggers = strings(config, "OnBuild");
            triggers.push(trigger.clone());
            config.insert("OnBuild".into(), json!(triggers));
        }
        Command::Healthcheck(check) => {
            config.insert("Healthcheck".into(), healthcheck(check, shell));
        }
        Command::Maintainer(name) => *author = Some(name.clone()),
        Command::Arg(_) | Command::Run(_) | Command::Copy(_) | Command::Add(_) | Command::Workdir(_) => {
            return Err(Invalid(format!("{} does not change only the config", instruction.original)).into());
        }
    }
    Ok(())
}

/// docker's `Healthcheck` object.
fn healthcheck(check: &Healthcheck, shell: &[String]) -> Value {
    match check {
        Healthcheck::None => json!({"Test": ["NONE"]}),
        Healthcheck::Check { test, interval, timeout, start_period, retries } => {
            let test: Vec<String> = match test {
                ShellOrExec::Exec(argv) => std::iter::once("CMD".to_string()).chain(argv.iter().cloned()).collect(),
                ShellOrExec::Shell(line) => {
                    let _ = shell;
                    vec!["CMD-SHELL".to_string(), line.clone()]
                }
            };
            let mut out = Map::new();
            out.insert("Test".into(), json!(test));
            for (key, d) in [("Interval", interval), ("Timeout", timeout), ("StartPeriod", start_period)] {
                if let Some(d) = d {
                    out.insert(key.into(), json!(d.as_nanos() as u64));
                }
            }
            if let Some(r) = retries {
                out.insert("Retries".into(), json!(r));
            }
            Value::Object(out)
        }
    }
}

/// The instructions `commit --change` accepts (docker's list).
const CHANGE_COMMANDS: &[&str] = &[
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "LABEL",
    "ONBUILD",
    "USER",
    "VOLUME",
    "WORKDIR",
    "STOPSIGNAL",
    "HEALTHCHECK",
];

/// `commit --change`: each instruction applied to the container's config `config` (docker's
/// `Config` object), in order.
pub fn apply_changes(config: Value, changes: &[String]) -> Result<Value> {
    let mut config = match config {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let mut shell = default_shell();
    let mut cmd_set = true;
    let mut author = None;
    for change in changes {
        let word = change.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
        if !CHANGE_COMMANDS.contains(&word.as_str()) {
            return Err(Invalid(format!("{} is not a valid change command", word.to_lowercase())).into());
        }
        // Parsed as the one instruction of a stage (ONBUILD and MAINTAINER included).
        let parsed = dockerfile::parse(&format!("FROM scratch\n{change}")).map_err(|e| Invalid(e.to_string()))?;
        let instruction = parsed
            .stages
            .first()
            .and_then(|s| s.instructions.first())
            .cloned()
            .ok_or_else(|| Invalid(format!("{change:?} is not an instruction")))?;
        let env = strings(&config, "Env");
        let lookup = |name: &str| {
            env.iter().find_map(|e| e.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
        };
        let instruction = instruction.expand(&lookup).map_err(|e| Invalid(e.to_string()))?;
        if let Command::Workdir(dir) = &instruction.command {
            let base = config.get("WorkingDir").and_then(Value::as_str).unwrap_or("/").to_string();
            config.insert("WorkingDir".into(), json!(join_workdir(&base, dir)));
            continue;
        }
        apply(
            &instruction,
            Target { config: &mut config, shell: &mut shell, cmd_set: &mut cmd_set, author: &mut author },
        )?;
    }
    Ok(Value::Object(config))
}

/// WORKDIR's rule: a relative path is relative to the previous working directory; the result
/// is clean and absolute.
pub fn join_workdir(base: &str, dir: &str) -> String {
    let joined = if dir.starts_with('/') { dir.to_string() } else { format!("{}/{dir}", base.trim_end_matches('/')) };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workdirs_join_and_clean() {
        assert_eq!(join_workdir("/", "app"), "/app");
        assert_eq!(join_workdir("/app", "sub/../x"), "/app/x");
        assert_eq!(join_workdir("/app", "/abs/"), "/abs");
        assert_eq!(join_workdir("/a", ".."), "/");
    }

    #[test]
    fn exposed_ports_default_to_tcp_and_expand_ranges() {
        assert_eq!(exposed_ports("80").unwrap(), ["80/tcp"]);
        assert_eq!(exposed_ports("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(exposed_ports("8000-8002").unwrap(), ["8000/tcp", "8001/tcp", "8002/tcp"]);
        assert!(exposed_ports("x").is_err());
        assert!(exposed_ports("80/xyz").is_err());
    }

    #[test]
    fn commit_changes_set_the_config_and_refuse_build_steps() {
        let config = json!({"Env": ["PATH=/bin"], "Cmd": ["sh"]});
        let changed = apply_changes(
            config.clone(),
            &[
                "ENV A=1 B=$PATH".into(),
                "CMD [\"echo\", \"hi\"]".into(),
                "EXPOSE 80".into(),
                "WORKDIR /w".into(),
                "LABEL k=v".into(),
            ],
        )
        .unwrap();
        assert_eq!(changed["Env"], json!(["PATH=/bin", "A=1", "B=/bin"]));
        assert_eq!(changed["Cmd"], json!(["echo", "hi"]));
        assert_eq!(changed["ExposedPorts"], json!({"80/tcp": {}}));
        assert_eq!(changed["WorkingDir"], json!("/w"));
        assert_eq!(changed["Labels"], json!({"k": "v"}));
        let err = apply_changes(config, &["RUN echo".into()]).unwrap_err();
        assert_eq!(err.to_string(), "run is not a valid change command");
    }
}
