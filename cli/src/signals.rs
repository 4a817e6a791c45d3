//! Signal names as docker takes them (`SIGTERM`, `TERM`, `term`, `15`) and as numbers to send.

use std::str::FromStr;

use anyhow::{anyhow, Result};
use nix::sys::signal::Signal;

/// The largest real-time signal number on Linux.
const MAX_SIGNAL: u32 = 64;

/// The number of `name`: a signal name with or without `SIG`, in any case, or a number.
pub fn parse(name: &str) -> Result<u32> {
    let name = name.trim();
    if let Ok(number) = name.parse::<u32>() {
        if (1..=MAX_SIGNAL).contains(&number) {
            return Ok(number);
        }
        return Err(anyhow!("invalid signal: {name}"));
    }
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    Signal::from_str(&full).map(|s| s as u32).map_err(|_| anyhow!("invalid signal: {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_by_name_short_name_any_case_or_number() {
        assert_eq!(parse("SIGTERM").unwrap(), 15);
        assert_eq!(parse("TERM").unwrap(), 15);
        assert_eq!(parse("term").unwrap(), 15);
        assert_eq!(parse("sigkill").unwrap(), 9);
        assert_eq!(parse("9").unwrap(), 9);
        assert_eq!(parse("HUP").unwrap(), 1);
        assert_eq!(parse("usr1").unwrap(), 10);
        assert_eq!(parse("WINCH").unwrap(), 28);
    }

    #[test]
    fn unknown_signals_are_errors() {
        assert!(parse("SIGBOGUS").is_err());
        assert!(parse("0").is_err());
        assert!(parse("65").is_err());
        assert!(parse("").is_err());
    }
}
