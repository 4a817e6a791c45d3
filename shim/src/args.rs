//! The shim's command line as containerd writes it: Go `flag` style (`-namespace NS`,
//! `-address=A`, `--id ID`, bare `-debug`), then an optional action (`start`, `delete`). No
//! action means "be the long-lived shim" (how `start` re-executes itself).

use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// What this invocation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Spawn the long-lived shim, print its address, exit.
    Start,
    /// Clean up after a dead shim, print a `DeleteResponse`.
    Delete,
    /// Be the long-lived shim serving the Task API on fd 3.
    Serve,
    /// Print the version.
    Version,
}

/// Parsed flags.
#[derive(Debug, Clone)]
pub struct Flags {
    /// containerd namespace.
    pub namespace: String,
    /// containerd's grpc address (the socket name is derived from it).
    pub address: String,
    /// `containerd` binary, for `publish` when there is no `TTRPC_ADDRESS`.
    pub publish_binary: String,
    /// Container (task) id.
    pub id: String,
    /// Bundle directory (`delete`; `start` runs in it).
    pub bundle: Option<PathBuf>,
    /// More logging.
    pub debug: bool,
    /// What to do.
    pub action: Action,
}

/// Parses `args` (without argv[0]).
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Flags> {
    let mut flags = Flags {
        namespace: String::new(),
        address: String::new(),
        publish_binary: String::new(),
        id: String::new(),
        bundle: None,
        debug: false,
        action: Action::Serve,
    };
    let mut args = args.into_iter();
    let mut action = None;
    while let Some(arg) = args.next() {
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')).filter(|f| !f.is_empty()) else {
            if action.is_some() {
                bail!("unexpected argument {arg:?}");
            }
            action = Some(match arg.as_str() {
                "start" => Action::Start,
                "delete" => Action::Delete,
                other => bail!("unknown action {other:?} (want start or delete)"),
            });
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        if matches!(name, "debug" | "v" | "version") {
            let on = match inline.as_deref() {
                None | Some("true") | Some("1") => true,
                Some("false") | Some("0") => false,
                Some(v) => bail!("invalid boolean value {v:?} for -{name}"),
            };
            if name == "debug" {
                flags.debug = on;
            } else if on {
                flags.action = Action::Version;
                return Ok(flags);
            }
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => args.next().with_context(|| format!("flag -{name} needs a value"))?,
        };
        match name {
            "namespace" => flags.namespace = value,
            "address" => flags.address = value,
            "publish-binary" => flags.publish_binary = value,
            "id" => flags.id = value,
            "bundle" => flags.bundle = Some(PathBuf::from(value)),
            // Newer containerd versions pass these; they change nothing for this shim.
            "socket" | "bootstrap-options" => {}
            other => bail!("flag provided but not defined: -{other}"),
        }
    }
    flags.action = action.unwrap_or(Action::Serve);
    if flags.namespace.is_empty() {
        bail!("shim namespace cannot be empty (-namespace)");
    }
    if flags.id.is_empty() && flags.action != Action::Serve {
        bail!("shim id cannot be empty (-id)");
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<Flags> {
        parse(s.split_whitespace().map(str::to_string))
    }

    #[test]
    fn parses_containerds_start_invocation() {
        let f = parse_str("-namespace default -address /run/c.sock -publish-binary /usr/bin/containerd -id c1 start")
            .expect("parse");
        assert_eq!(f.action, Action::Start);
        assert_eq!((f.namespace.as_str(), f.address.as_str(), f.id.as_str()), ("default", "/run/c.sock", "c1"));
        assert_eq!(f.publish_binary, "/usr/bin/containerd");
        assert!(!f.debug);
    }

    #[test]
    fn parses_delete_with_bundle_equals_and_debug() {
        let f = parse_str("--namespace=k8s.io -address a -id x -bundle=/b -debug delete").expect("parse");
        assert_eq!(f.action, Action::Delete);
        assert_eq!(f.bundle, Some(PathBuf::from("/b")));
        assert!(f.debug);
    }

    #[test]
    fn no_action_is_serve() {
        assert_eq!(parse_str("-namespace n -id x -address a").expect("parse").action, Action::Serve);
    }

    #[test]
    fn rejects_unknown_flags_missing_values_and_namespace() {
        assert!(parse_str("-namespace n -id x -bogus 1 start").is_err());
        assert!(parse_str("-namespace n -id").is_err());
        assert!(parse_str("-id x start").is_err());
        assert!(parse_str("-namespace n -id x run").is_err());
    }
}
