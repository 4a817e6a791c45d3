//! Signal names and numbers as `kill` accepts them (`KILL`, `SIGKILL`, `sigterm`, `9`, and the
//! real-time ones: `37`, `RTMIN+3`, `SIGRTMAX-2`, which systemd images stop with).

use anyhow::{bail, Result};
use nix::sys::signal::Signal;
use std::str::FromStr;

/// The first real-time signal as glibc (and runc) number them: the kernel's 32 and 33 are the
/// C library's own.
const RTMIN: i32 = 34;
/// The last signal.
const RTMAX: i32 = 64;

/// Parses a signal name or number into a signal number (1-64).
pub fn parse(text: &str) -> Result<i32> {
    let invalid = || anyhow::anyhow!("invalid signal {text:?}");
    if let Ok(n) = text.parse::<i32>() {
        return if (1..=RTMAX).contains(&n) { Ok(n) } else { Err(invalid()) };
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let rt = |base: i32, rest: &str| -> Result<i32> {
        let n = match rest.as_bytes().first() {
            None => base,
            Some(b'+') => base + rest[1..].parse::<i32>().map_err(|_| invalid())?,
            Some(b'-') => base - rest[1..].parse::<i32>().map_err(|_| invalid())?,
            Some(_) => bail!("invalid signal {text:?}"),
        };
        if (RTMIN..=RTMAX).contains(&n) {
            Ok(n)
        } else {
            Err(invalid())
        }
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return rt(RTMIN, rest);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return rt(RTMAX, rest);
    }
    match Signal::from_str(&format!("SIG{name}")) {
        Ok(sig) if !name.is_empty() => Ok(sig as i32),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_prefixes_and_realtime_signals() {
        assert_eq!(parse("KILL").unwrap(), libc::SIGKILL);
        assert_eq!(parse("SIGTERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse("sigusr1").unwrap(), libc::SIGUSR1);
        assert_eq!(parse("9").unwrap(), 9);
        assert_eq!(parse("37").unwrap(), 37);
        assert_eq!(parse("SIGRTMIN+3").unwrap(), 37);
        assert_eq!(parse("rtmin").unwrap(), 34);
        assert_eq!(parse("RTMAX-2").unwrap(), 62);
        for bad in ["", "NOPE", "SIG", "999", "-1", "0", "65", "RTMIN+31", "RTMAX+1", "RTMINX", "RTMIN+x"] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
