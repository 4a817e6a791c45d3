//! Signal names and numbers as `kill` accepts them (`KILL`, `SIGKILL`, `sigterm`, `9`).

use anyhow::{bail, Result};
use nix::sys::signal::Signal;
use std::str::FromStr;

/// Parses a signal name or number.
pub fn parse(text: &str) -> Result<Signal> {
    if let Ok(n) = text.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| anyhow::anyhow!("invalid signal {text:?}"));
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    match Signal::from_str(&name) {
        Ok(sig) => Ok(sig),
        Err(_) => bail!("invalid signal {text:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_prefixes() {
        assert_eq!(parse("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse("SIGTERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse("sigusr1").unwrap(), Signal::SIGUSR1);
        assert_eq!(parse("9").unwrap(), Signal::SIGKILL);
        for bad in ["", "NOPE", "SIG", "999", "-1"] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
