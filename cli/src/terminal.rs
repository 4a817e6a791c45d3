//! The user's terminal while attached with `-t`: raw mode (restored however the command ends),
//! its window size, and docker's detach keys (ctrl-p ctrl-q).

use std::io::{self, IsTerminal};
use std::os::fd::AsRawFd;

use anyhow::{bail, Context, Result};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

/// The terminal in raw mode; dropping it restores the saved settings, so an error or a panic
/// leaves the user's shell usable.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Puts stdin's terminal in raw mode (as docker's `term.MakeRaw`): keys reach the container
    /// unbuffered and unechoed, ctrl-c included.
    pub fn enable() -> Result<RawMode> {
        let stdin = io::stdin();
        let saved = tcgetattr(&stdin).context("reading the terminal's settings")?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).context("putting the terminal in raw mode")?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // Nothing better to do if the terminal is gone.
        let _ = tcsetattr(io::stdin(), SetArg::TCSANOW, &self.saved);
    }
}

nix::ioctl_read_bad!(get_window_size, nix::libc::TIOCGWINSZ, nix::libc::winsize);

/// (width, height) in characters of the terminal on stdout, else stdin; `None` without one.
pub fn window_size() -> Option<(u32, u32)> {
    let fd = if io::stdout().is_terminal() {
        io::stdout().as_raw_fd()
    } else if io::stdin().is_terminal() {
        io::stdin().as_raw_fd()
    } else {
        return None;
    };
    let mut size = nix::libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: `fd` is this process's open stdout or stdin, and TIOCGWINSZ writes exactly one
    // `winsize` into the struct we own.
    unsafe { get_window_size(fd, &mut size) }.ok()?;
    (size.ws_col > 0 && size.ws_row > 0).then_some((u32::from(size.ws_col), u32::from(size.ws_row)))
}

/// docker's default detach sequence: ctrl-p ctrl-q.
const DEFAULT_DETACH_KEYS: [u8; 2] = [0x10, 0x11];

/// Finds the detach sequence in the keys typed, across reads. Bytes that might start it are
/// held back until the next byte shows whether they do, as docker's escape proxy does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachKeys {
    sequence: Vec<u8>,
    matched: usize,
}

impl Default for DetachKeys {
    fn default() -> DetachKeys {
        DetachKeys { sequence: DEFAULT_DETACH_KEYS.to_vec(), matched: 0 }
    }
}

impl DetachKeys {
    /// docker's `--detach-keys`: comma-separated keys, each a single character or `ctrl-X`
    /// with X a letter or one of `@[\]^_` (`ctrl-p,ctrl-q`, `ctrl-a,x`). Empty means the default.
    pub fn parse(spec: &str) -> Result<DetachKeys> {
        if spec.is_empty() {
            return Ok(DetachKeys::default());
        }
        let mut sequence = Vec::new();
        for key in spec.split(',') {
            let byte = match key.strip_prefix("ctrl-") {
                Some(rest) if rest.len() == 1 => {
                    let c = rest.as_bytes()[0].to_ascii_lowercase();
                    match c {
                        b'a'..=b'z' => c - b'a' + 1,
                        b'@' => 0,
                        b'[' => 27,
                        b'\\' => 28,
                        b']' => 29,
                        b'^' => 30,
                        b'_' => 31,
                        _ => bail!("invalid detach key {key:?}: ctrl- takes a letter or one of @[\\]^_"),
                    }
                }
                None if key.len() == 1 => key.as_bytes()[0],
                _ => bail!("invalid detach keys {spec:?}: use keys like ctrl-p,ctrl-q"),
            };
            sequence.push(byte);
        }
        Ok(DetachKeys { sequence, matched: 0 })
    }

    /// The bytes to forward to the container from `input`, and whether the user detached.
    pub fn scan(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut forward = Vec::with_capacity(input.len());
        for &byte in input {
            if byte == self.sequence[self.matched] {
                self.matched += 1;
                if self.matched == self.sequence.len() {
                    self.matched = 0;
                    return (forward, true);
                }
                continue;
            }
            if self.matched > 0 {
                forward.extend_from_slice(&self.sequence[..self.matched]);
                self.matched = 0;
                if byte == self.sequence[0] {
                    self.matched = 1;
                    continue;
                }
            }
            forward.push(byte);
        }
        (forward, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctrl_p_ctrl_q_detaches_and_other_bytes_pass_through() {
        let mut keys = DetachKeys::default();
        assert_eq!(keys.scan(b"ls\r"), (b"ls\r".to_vec(), false));
        assert_eq!(keys.scan(b"a\x10\x11b"), (b"a".to_vec(), true));
    }

    #[test]
    fn detach_sequence_split_across_reads_is_held_then_recognised() {
        let mut keys = DetachKeys::default();
        assert_eq!(keys.scan(b"x\x10"), (b"x".to_vec(), false));
        assert_eq!(keys.scan(b"\x11"), (vec![], true));
    }

    #[test]
    fn detach_keys_parse_like_dockers() {
        assert_eq!(DetachKeys::parse("").unwrap(), DetachKeys::default());
        assert_eq!(DetachKeys::parse("ctrl-p,ctrl-q").unwrap(), DetachKeys::default());
        let mut keys = DetachKeys::parse("ctrl-a,x").unwrap();
        assert_eq!(keys.scan(b"ab\x01x"), (b"ab".to_vec(), true));
        assert_eq!(DetachKeys::parse("ctrl-[").unwrap().sequence, [27]);
        assert!(DetachKeys::parse("ctrl-1").is_err());
        assert!(DetachKeys::parse("alt-x").is_err());
        assert!(DetachKeys::parse("ctrl-p,,ctrl-q").is_err());
    }

    #[test]
    fn ctrl_p_not_followed_by_ctrl_q_is_forwarded() {
        let mut keys = DetachKeys::default();
        assert_eq!(keys.scan(b"\x10a"), (b"\x10a".to_vec(), false));
        assert_eq!(keys.scan(b"\x10\x10\x11"), (b"\x10".to_vec(), true));
    }
}
