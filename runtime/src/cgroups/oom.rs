//! OOM notifications of a container's memory cgroup, as a file descriptor to poll: v1 registers
//! an eventfd on `memory.oom_control` through `cgroup.event_control`; v2 watches
//! `memory.events` with inotify and counts `oom_kill`.

use super::{CgroupPaths, Mode};
use anyhow::{Context, Result};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

/// A registered OOM watch.
pub struct OomWatch {
    fd: OwnedFd,
    kind: Kind,
}

enum Kind {
    /// v1: the eventfd; `dir` to tell an OOM from the cgroup going away (which also fires it).
    V1 { dir: PathBuf, _oom_control: std::fs::File },
    /// v2: the inotify fd and the last `oom_kill` count seen.
    V2 { events: PathBuf, seen: u64 },
}

fn oom_kills(events: &std::path::Path) -> u64 {
    std::fs::read_to_string(events)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

impl CgroupPaths {
    /// Starts watching for OOM kills; None when the container has no memory cgroup.
    pub fn watch_oom(&self) -> Result<Option<OomWatch>> {
        match self.mode {
            Mode::V1 => {
                let Some(dir) = self.dirs.iter().find(|d| d.join("memory.oom_control").exists()) else {
                    return Ok(None);
                };
                let oom_control = std::fs::File::open(dir.join("memory.oom_control"))
                    .with_context(|| format!("opening {}", dir.join("memory.oom_control").display()))?;
                // SAFETY: eventfd has no memory preconditions; the result is checked below.
                let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
                if efd < 0 {
                    return Err(std::io::Error::last_os_error()).context("eventfd for OOM notifications");
                }
                // SAFETY: efd is a new descriptor that nothing else owns.
                let fd = unsafe { OwnedFd::from_raw_fd(efd) };
                let control = dir.join("cgroup.event_control");
                std::fs::write(&control, format!("{} {}", fd.as_raw_fd(), oom_control.as_raw_fd()))
                    .with_context(|| format!("registering for OOM events in {}", control.display()))?;
                Ok(Some(OomWatch { fd, kind: Kind::V1 { dir: dir.clone(), _oom_control: oom_control } }))
            }
            Mode::V2 => {
                let Some(events) = self.dirs.first().map(|d| d.join("memory.events")).filter(|e| e.exists()) else {
                    return Ok(None);
                };
                let fd = nix::sys::inotify::Inotify::init(nix::sys::inotify::InitFlags::IN_CLOEXEC)
                    .context("inotify for OOM notifications")?;
                fd.add_watch(&events, nix::sys::inotify::AddWatchFlags::IN_MODIFY)
                    .with_context(|| format!("watching {}", events.display()))?;
                let seen = oom_kills(&events);
                Ok(Some(OomWatch { fd: fd.into(), kind: Kind::V2 { events, seen } }))
            }
        }
    }
}

impl OomWatch {
    /// The descriptor that becomes readable when something happened.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// After `fd()` became readable: how many OOM kills happened since the last call (0 for
    /// other changes), and whether the cgroup is gone (stop watching).
    pub fn read(&mut self) -> Result<(u64, bool)> {
        let mut buf = [0u8; 4096];
        let n = nix::unistd::read(&self.fd, &mut buf).context("reading the OOM watch fd")?;
        match &mut self.kind {
            Kind::V1 { dir, .. } => {
                // The kernel also signals the eventfd when the cgroup is removed.
                if !dir.exists() {
                    return Ok((0, true));
                }
                let count = if n == 8 { u64::from_ne_bytes(buf[..8].try_into().unwrap_or_default()) } else { 0 };
                Ok((count, false))
            }
            Kind::V2 { events, seen } => {
                if !events.exists() {
                    return Ok((0, true));
                }
                let now = oom_kills(events);
                let new = now.saturating_sub(*seen);
                *seen = now;
                Ok((new, false))
            }
        }
    }
}
