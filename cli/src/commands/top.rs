//! `berth top`: the container's processes (Tasks.ListPids) as `ps -ef` shows them, read from
//! this host's /proc (berth runs where berthd does): UID PID PPID C STIME TTY TIME CMD.

use std::io::{self, Write};

use anyhow::{bail, Context, Result};
use berth_proto::tasks::TaskRequest;
use nix::unistd::{sysconf, SysconfVar, Uid, User};

use crate::daemon::{ctx, Berthd};
use crate::table;

/// Display the running processes of a container.
#[derive(clap::Args, Debug)]
pub struct TopArgs {
    /// Container name or id.
    container: String,
    /// ps options (not supported yet: berth shows ps -ef's columns).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    ps_options: Vec<String>,
}

/// Prints the table.
pub async fn run(berthd: &Berthd, args: &TopArgs) -> Result<()> {
    if !args.ps_options.is_empty() {
        bail!("berth top does not take ps options yet (it shows ps -ef's columns)");
    }
    let response =
        berthd.tasks().list_pids(ctx(), &TaskRequest { id: args.container.clone(), ..Default::default() }).await?;
    let host = HostClock::read()?;
    let mut rows = vec![["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"].map(str::to_string).to_vec()];
    for pid in &response.pids {
        // A process may exit between the listing and the read.
        if let Ok(process) = Process::read(*pid) {
            rows.push(process.row(&host));
        }
    }
    io::stdout().lock().write_all(table::render(&rows).as_bytes())?;
    Ok(())
}

/// What turns /proc's clock ticks into times.
struct HostClock {
    ticks_per_second: u64,
    boot_time: i64,
    uptime_seconds: f64,
    now: i64,
}

impl HostClock {
    fn read() -> Result<HostClock> {
        let ticks_per_second = sysconf(SysconfVar::CLK_TCK).ok().flatten().filter(|t| *t > 0).unwrap_or(100) as u64;
        let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        let boot_time =
            stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|t| t.trim().parse().ok()).unwrap_or(0);
        let uptime = std::fs::read_to_string("/proc/uptime").context("reading /proc/uptime")?;
        let uptime_seconds = uptime.split_whitespace().next().and_then(|u| u.parse().ok()).unwrap_or(0.0);
        let now = crate::humanize::now_nanos() / 1_000_000_000;
        Ok(HostClock { ticks_per_second, boot_time, uptime_seconds, now })
    }
}

/// One process as /proc describes it.
#[derive(Debug, PartialEq)]
struct Process {
    pid: u32,
    ppid: u32,
    uid: u32,
    tty_nr: u64,
    cpu_ticks: u64,
    start_ticks: u64,
    comm: String,
    cmdline: Vec<String>,
}

impl Process {
    fn read(pid: u32) -> Result<Process> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))?;
        let mut process = parse_stat(&stat)?;
        process.uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            .and_then(|uid| uid.parse().ok())
            .unwrap_or(0);
        process.cmdline = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        Ok(process)
    }

    fn row(&self, host: &HostClock) -> Vec<String> {
        let user =
            User::from_uid(Uid::from_raw(self.uid)).ok().flatten().map_or_else(|| self.uid.to_string(), |u| u.name);
        let elapsed_ticks = (host.uptime_seconds * host.ticks_per_second as f64) as u64;
        let running_ticks = elapsed_ticks.saturating_sub(self.start_ticks);
        let cpu_percent = (self.cpu_ticks * 100).checked_div(running_ticks).unwrap_or(0);
        let started = host.boot_time + (self.start_ticks / host.ticks_per_second) as i64;
        let command = if self.cmdline.is_empty() { format!("[{}]", self.comm) } else { self.cmdline.join(" ") };
        vec![
            user,
            self.pid.to_string(),
            self.ppid.to_string(),
            cpu_percent.to_string(),
            start_time(started, host.now),
            tty_name(self.tty_nr),
            cpu_time(self.cpu_ticks / host.ticks_per_second),
            command,
        ]
    }
}

/// The fields of /proc/PID/stat that top needs (the command name may hold spaces and parens).
fn parse_stat(stat: &str) -> Result<Process> {
    let open = stat.find('(').context("malformed stat")?;
    let close = stat.rfind(')').context("malformed stat")?;
    let pid = stat[..open].trim().parse()?;
    let comm = stat[open + 1..close].to_string();
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let field = |n: usize| -> Result<u64> {
        // Field numbers as proc(5) counts them: state is field 3.
        fields.get(n - 3).context("short stat")?.parse::<u64>().context("malformed stat field")
    };
    Ok(Process {
        pid,
        ppid: field(4)? as u32,
        uid: 0,
        tty_nr: field(7)?,
        cpu_ticks: field(14)? + field(15)?,
        start_ticks: field(22)?,
        comm,
        cmdline: Vec::new(),
    })
}

/// ps's TTY: `pts/N`, `ttyN`, or `?`.
fn tty_name(tty_nr: u64) -> String {
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    match major {
        0 => "?".to_string(),
        4 => format!("tty{minor}"),
        136..=143 => format!("pts/{}", minor + (major - 136) * 256),
        _ => "?".to_string(),
    }
}

/// ps's TIME: `[DD-]HH:MM:SS` of CPU time.
fn cpu_time(seconds: u64) -> String {
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let clock = format!("{:02}:{:02}:{:02}", rest / 3600, rest % 3600 / 60, rest % 60);
    if days > 0 {
        format!("{days}-{clock}")
    } else {
        clock
    }
}

/// ps's STIME (in UTC): `HH:MM` today, `MonDD` this year, else the year.
fn start_time(started: i64, now: i64) -> String {
    let (Some(start), Some(now)) =
        (chrono::DateTime::from_timestamp(started, 0), chrono::DateTime::from_timestamp(now, 0))
    else {
        return "?".to_string();
    };
    if start.date_naive() == now.date_naive() {
        start.format("%H:%M").to_string()
    } else if start.format("%Y").to_string() == now.format("%Y").to_string() {
        start.format("%b%d").to_string()
    } else {
        start.format("%Y").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_the_command_name() {
        let stat =
            "4242 (my (odd) cmd) S 4200 4242 4242 34817 4242 4194304 100 0 0 0 250 50 0 0 20 0 1 0 12345 1000 10 0";
        let process = parse_stat(stat).unwrap();
        assert_eq!(process.pid, 4242);
        assert_eq!(process.ppid, 4200);
        assert_eq!(process.comm, "my (odd) cmd");
        assert_eq!(process.tty_nr, 34817);
        assert_eq!(process.cpu_ticks, 300);
        assert_eq!(process.start_ticks, 12345);
        assert!(parse_stat("garbage").is_err());
    }

    #[test]
    fn ttys_and_times_read_like_ps() {
        assert_eq!(tty_name(0), "?");
        assert_eq!(tty_name(34817), "pts/1");
        assert_eq!(tty_name((4 << 8) | 2), "tty2");
        assert_eq!(cpu_time(0), "00:00:00");
        assert_eq!(cpu_time(3_725), "01:02:05");
        assert_eq!(cpu_time(90_061), "1-01:01:01");
        let now = 1_700_000_000; // 2023-11-14 22:13:20 UTC
        assert_eq!(start_time(now - 60, now), "22:12");
        assert_eq!(start_time(now - 86_400 * 3, now), "Nov11");
        assert_eq!(start_time(now - 86_400 * 400, now), "2022");
    }

    #[test]
    fn this_process_reads_from_proc() {
        let process = Process::read(std::process::id()).unwrap();
        assert_eq!(process.pid, std::process::id());
        assert!(!process.cmdline.is_empty());
        let row = process.row(&HostClock::read().unwrap());
        assert_eq!(row.len(), 8);
    }
}
