//! docker's json-file log driver: one `{"log":"…\n","stream":"stdout","time":"<RFC 3339 nano>"}`
//! object a line, rotated at `max-size` into `<file>.1` … `<file>.<max-file - 1>`.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// A partial line longer than this is written as it is (docker's 16 KiB buffer).
const MAX_PARTIAL: usize = 16 * 1024;

/// One log line as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// `--log-opt`s of the json-file driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Bytes; 0 means never rotate.
    pub max_size: u64,
    /// Files kept, the live one included (≥ 1).
    pub max_file: u32,
}

impl Rotation {
    /// Parses `max-size` (`10m`, `1k`, bytes) and `max-file`; other options are refused.
    pub fn from_opts(opts: &std::collections::BTreeMap<String, String>) -> Result<Rotation> {
        let mut r = Rotation { max_size: 0, max_file: 1 };
        for (k, v) in opts {
            match k.as_str() {
                "max-size" => r.max_size = parse_size(v).with_context(|| format!("invalid max-size {v:?}"))?,
                "max-file" => {
                    r.max_file =
                        v.parse().ok().filter(|n| *n >= 1).with_context(|| format!("invalid max-file {v:?}"))?;
                }
                other => bail!("unknown log opt '{other}' for json-file log driver"),
            }
        }
        if r.max_file > 1 && r.max_size == 0 {
            bail!("max-file cannot be set without max-size");
        }
        Ok(r)
    }
}

fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: f64 = num.parse().ok()?;
    (n >= 0.0).then_some((n * mult as f64) as u64)
}

/// The writer of one container's log.
pub struct JsonLog {
    path: PathBuf,
    file: File,
    size: u64,
    rotation: Rotation,
    /// Output since the last newline, per stream (index 0 stdout, 1 stderr).
    partial: [Vec<u8>; 2],
}

impl JsonLog {
    /// Opens `path` for appending (it survives restarts: the log goes on where it was).
    pub fn open(path: &Path, rotation: Rotation) -> Result<JsonLog> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening log {}", path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(JsonLog { path: path.into(), file, size, rotation, partial: [Vec::new(), Vec::new()] })
    }

    /// Appends `data` from `stream` (1 stdout, 2 stderr): complete lines now, a partial one
    /// when its newline comes (or it grows past 16 KiB).
    pub fn write(&mut self, stream: u32, data: &[u8]) -> Result<()> {
        let idx = if stream == super::io::STDERR { 1 } else { 0 };
        let mut buf = std::mem::take(&mut self.partial[idx]);
        buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(pos) = buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos + 1;
            self.line(idx, &buf[start..end])?;
            start = end;
        }
        let rest = buf.split_off(start);
        if rest.len() >= MAX_PARTIAL {
            self.line(idx, &rest)?;
        } else {
            self.partial[idx] = rest;
        }
        Ok(())
    }

    /// Writes what is left without a newline (the process ended).
    pub fn flush_partial(&mut self) {
        for idx in 0..2 {
            let rest = std::mem::take(&mut self.partial[idx]);
            if !rest.is_empty() {
                if let Err(e) = self.line(idx, &rest) {
                    tracing::warn!("writing a container log: {e:#}");
                }
            }
        }
    }

    fn line(&mut self, idx: usize, bytes: &[u8]) -> Result<()> {
        let entry = Entry {
            log: String::from_utf8_lossy(bytes).into_owned(),
            stream: if idx == 1 { "stderr" } else { "stdout" }.into(),
            time: rfc3339_nano(std::time::SystemTime::now()),
        };
        let mut text = serde_json::to_vec(&entry).context("encoding a log line")?;
        text.push(b'\n');
        if self.rotation.max_size > 0 && self.size > 0 && self.size + text.len() as u64 > self.rotation.max_size {
            self.rotate()?;
        }
        self.file.write_all(&text).with_context(|| format!("writing {}", self.path.display()))?;
        self.size += text.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> Result<()> {
        let n = self.rotation.max_file;
        if n <= 1 {
            self.file.set_len(0).with_context(|| format!("truncating {}", self.path.display()))?;
        } else {
            for i in (1..n - 1).rev() {
                let _ = std::fs::rename(rotated(&self.path, i), rotated(&self.path, i + 1));
            }
            std::fs::rename(&self.path, rotated(&self.path, 1))
                .with_context(|| format!("rotating {}", self.path.display()))?;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .with_context(|| format!("opening log {}", self.path.display()))?;
        }
        self.size = 0;
        Ok(())
    }
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// The log files of `path`, oldest first.
pub fn files(path: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = (1..1000).map(|n| rotated(path, n)).take_while(|p| p.exists()).collect();
    out.reverse();
    out.push(path.to_path_buf());
    out
}

/// Every entry of the log (rotated files included), oldest first.
pub fn read_all(path: &Path) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for file in files(path) {
        let f = match File::open(&file) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("opening {}", file.display())),
        };
        for line in BufReader::new(f).lines() {
            let line = line.with_context(|| format!("reading {}", file.display()))?;
            if let Ok(entry) = serde_json::from_str::<Entry>(&line) {
                out.push(entry);
            }
        }
    }
    Ok(out)
}

/// Reads what is appended to a log as it grows, following it across rotations.
pub struct Follower {
    path: PathBuf,
    offset: u64,
    inode: u64,
    partial: Vec<u8>,
}

impl Follower {
    /// Starts at the current end of `path`.
    pub fn new(path: &Path) -> Follower {
        use std::os::unix::fs::MetadataExt;
        let (offset, inode) = std::fs::metadata(path).map(|m| (m.len(), m.ino())).unwrap_or((0, 0));
        Follower { path: path.into(), offset, inode, partial: Vec::new() }
    }

    /// The complete entries appended since the last call.
    pub fn poll(&mut self) -> Vec<Entry> {
        use std::io::{Read, Seek, SeekFrom};
        use std::os::unix::fs::MetadataExt;
        let Ok(mut f) = File::open(&self.path) else { return Vec::new() };
        let Ok(meta) = f.metadata() else { return Vec::new() };
        if meta.ino() != self.inode || meta.len() < self.offset {
            // Rotated or truncated: the new file is read from its start.
            self.inode = meta.ino();
            self.offset = 0;
            self.partial.clear();
        }
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_err() {
            return Vec::new();
        }
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let mut out = Vec::new();
        while let Some(pos) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=pos).collect();
            if let Ok(e) = serde_json::from_slice::<Entry>(&line) {
                out.push(e);
            }
        }
        out
    }
}

/// RFC 3339 with nanoseconds in UTC, as docker writes log times.
pub fn rfc3339_nano(t: std::time::SystemTime) -> String {
    berth_runtime::logging::rfc3339(t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default())
}

/// Parses what [`rfc3339_nano`] writes (and any `…Z` RFC 3339 time) to Unix nanoseconds.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    let frac_ns: i64 = format!("{frac:0<9}")[..9].parse().ok()?;
    let days = days_from_civil(y, m, day);
    Some((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000_000 + frac_ns)
}

// The inverse of the runtime's civil-from-days (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_partials_kept_until_their_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c-json.log");
        let mut log = JsonLog::open(&path, Rotation { max_size: 0, max_file: 1 }).expect("open");
        log.write(1, b"hello\nwor").expect("write");
        log.write(2, b"oops\n").expect("write");
        log.write(1, b"ld\n").expect("write");
        log.write(1, b"tail").expect("write");
        log.flush_partial();
        let entries = read_all(&path).expect("read");
        let got: Vec<(&str, &str)> = entries.iter().map(|e| (e.log.as_str(), e.stream.as_str())).collect();
        assert_eq!(got, [("hello\n", "stdout"), ("oops\n", "stderr"), ("world\n", "stdout"), ("tail", "stdout")]);
        assert!(parse_time(&entries[0].time).is_some());
    }

    #[test]
    fn rotation_keeps_max_file_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c-json.log");
        let mut log = JsonLog::open(&path, Rotation { max_size: 200, max_file: 3 }).expect("open");
        for i in 0..50 {
            log.write(1, format!("line {i}\n").as_bytes()).expect("write");
        }
        assert!(rotated(&path, 2).exists() && !rotated(&path, 3).exists());
        let entries = read_all(&path).expect("read");
        assert_eq!(entries.last().expect("last").log, "line 49\n");
        assert!(entries.len() < 50);
        let numbers: Vec<u32> = entries.iter().map(|e| e.log.trim()[5..].parse().expect("n")).collect();
        assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "in order: {numbers:?}");
    }

    #[test]
    fn times_round_trip() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 123_456_789);
        let s = rfc3339_nano(t);
        assert_eq!(s, "2023-11-14T22:13:20.123456789Z");
        assert_eq!(parse_time(&s), Some(1_700_000_000_123_456_789));
        assert_eq!(
            Rotation::from_opts(&[("max-size".to_string(), "1k".to_string())].into()).expect("opts").max_size,
            1024
        );
        assert!(Rotation::from_opts(&[("bogus".to_string(), "1".to_string())].into()).is_err());
    }
}
