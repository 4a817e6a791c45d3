//! `berth port`: the published ports of a container, from its NetworkSettings.Ports.

use std::io::{self, Write};

use anyhow::{bail, Result};
use serde_json::Value;

use crate::commands::container::get;
use crate::daemon::Berthd;

/// List port mappings or a specific mapping for the container.
#[derive(clap::Args, Debug)]
pub struct PortArgs {
    container: String,
    /// PRIVATE_PORT[/PROTO]
    port: Option<String>,
}

/// `(container port/proto, "host_ip:host_port")` of every published port, in port order.
fn bindings(network_settings: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(ports) = network_settings["Ports"].as_object() {
        for (key, list) in ports {
            for b in list.as_array().into_iter().flatten() {
                let ip = b["HostIp"].as_str().unwrap_or_default();
                let port = b["HostPort"].as_str().unwrap_or_default();
                out.push((key.clone(), format!("{ip}:{port}")));
            }
        }
    }
    let number = |k: &str| k.split('/').next().and_then(|p| p.parse::<u16>().ok()).unwrap_or(0);
    out.sort_by_key(|(k, _)| number(k));
    out
}

pub async fn run(berthd: &Berthd, args: &PortArgs) -> Result<()> {
    let container = get(berthd, &args.container).await?;
    let settings: Value = serde_json::from_slice(&container.network_settings).unwrap_or(Value::Null);
    let all = bindings(&settings);
    let mut out = io::stdout().lock();
    match &args.port {
        None => {
            for (key, host) in &all {
                writeln!(out, "{key} -> {host}")?;
            }
        }
        Some(port) => {
            let key = if port.contains('/') { port.clone() } else { format!("{port}/tcp") };
            let found: Vec<&String> = all.iter().filter(|(k, _)| *k == key).map(|(_, h)| h).collect();
            if found.is_empty() {
                bail!("No public port '{key}' published for {}", args.container);
            }
            for host in found {
                writeln!(out, "{host}")?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_come_in_port_order() {
        let settings = serde_json::json!({"Ports": {
            "8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "1234"}],
            "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}],
            "9/tcp": null}});
        assert_eq!(
            bindings(&settings),
            [("53/udp".to_string(), "127.0.0.1:5353".to_string()), ("8080/tcp".into(), "0.0.0.0:1234".into())]
        );
    }
}
