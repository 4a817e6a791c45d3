//! Prints berth's default seccomp profile resolved for a bundle's config.json (its process's
//! bounding set) as the JSON of an OCI `linux.seccomp`, so the benchmarks can give the very same
//! profile to berth, runc and crun.
//!
//! usage: default-seccomp-profile CONFIG_JSON

use anyhow::{bail, Context, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [config_path] = args.as_slice() else {
        bail!("usage: default-seccomp-profile CONFIG_JSON");
    };
    let text = std::fs::read(config_path).with_context(|| format!("reading {config_path}"))?;
    let spec = serde_json::from_slice(&text).with_context(|| format!("parsing {config_path}"))?;
    let seccomp = berth_runtime::seccomp::default_profile::resolve_for_spec(&spec)?;
    println!("{}", serde_json::to_string_pretty(&seccomp).context("serialising linux.seccomp")?);
    Ok(())
}
