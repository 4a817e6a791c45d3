//! The build context `berth build` sends to berthd, made as docker 20.10's CLI makes it: the
//! context directory as a tar, less what `.dockerignore` excludes (docker's pattern rules), with
//! the Dockerfile and `.dockerignore` always sent; or, for `berth build -`, stdin's archive or
//! lone Dockerfile.

use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest as _, Sha256};

/// The Dockerfile's name when `-f` does not give one.
pub const DEFAULT_DOCKERFILE: &str = "Dockerfile";

const DOCKERIGNORE: &str = ".dockerignore";

/// The patterns of a `.dockerignore`, matched as docker 20.10 matches them (its
/// `fileutils.PatternMatcher`): in order, the last matching pattern wins, and a path is
/// excluded when it or one of its parent directories matches an exclusion.
#[derive(Debug, Clone, Default)]
pub struct Dockerignore {
    patterns: Vec<IgnorePattern>,
}

#[derive(Debug, Clone)]
struct IgnorePattern {
    /// A `!` pattern: it re-includes what it matches.
    exception: bool,
    /// The cleaned pattern without its `!`.
    text: String,
    /// How many path components the pattern has: it is also tried on that many leading
    /// components of a path's parent directory.
    components: usize,
    tokens: Vec<Token>,
}

/// A pattern compiled as docker compiles it to a regular expression.
#[derive(Debug, Clone)]
enum Token {
    Char(char),
    /// `*`: any run of characters but `/`.
    Star,
    /// `?`: one character but `/`.
    Question,
    /// `**` or `**/` before more pattern: any number of leading directories, even none.
    AnyDirs,
    /// `**` ending the pattern: anything at all.
    AnyRest,
    /// `[...]`: ranges of characters, or their complement with `^`.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Dockerignore {
    /// Parses a `.dockerignore` as docker's CLI reads it: lines starting with `#` are comments,
    /// the others are trimmed and empty ones skipped, a pattern is cleaned (`filepath.Clean`)
    /// with a leading `/` dropped, and `!` makes it an exception.
    pub fn parse(text: &str) -> Result<Dockerignore> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut lines = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (exception, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let mut pattern = if pattern.is_empty() { String::new() } else { clean_path(pattern) };
            if pattern.len() > 1 && pattern.starts_with('/') {
                pattern.remove(0);
            }
            lines.push(if exception { format!("!{pattern}") } else { pattern });
        }
        Dockerignore::from_patterns(&lines)
    }

    /// Compiles already-read patterns (docker's `NewPatternMatcher`).
    fn from_patterns(lines: &[String]) -> Result<Dockerignore> {
        let mut patterns = Vec::new();
        for line in lines {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let cleaned = clean_path(line);
            let (exception, text) = match cleaned.strip_prefix('!') {
                Some("") => bail!("illegal exclusion pattern: \"!\""),
                Some(rest) => (true, rest.to_string()),
                None => (false, cleaned.clone()),
            };
            let tokens = compile(&text).with_context(|| format!("invalid .dockerignore pattern {line:?}"))?;
            patterns.push(IgnorePattern { exception, components: text.split('/').count(), text, tokens });
        }
        Ok(Dockerignore { patterns })
    }

    /// Whether the context path `rel_path` (relative, `/`-separated) is left out of the context.
    /// docker's matching does not depend on `is_dir`; a directory's exclusion excludes everything
    /// below it through the parent-directory rule.
    pub fn excludes(&self, rel_path: &str, _is_dir: bool) -> bool {
        let path: Vec<char> = rel_path.chars().collect();
        let parent = match rel_path.rfind('/') {
            Some(at) => &rel_path[..at],
            None => ".",
        };
        let parent_dirs: Vec<&str> = parent.split('/').collect();
        let mut excluded = false;
        for pattern in &self.patterns {
            let mut matched = matches(&pattern.tokens, &path);
            if !matched && parent != "." && pattern.components <= parent_dirs.len() {
                let prefix: Vec<char> = parent_dirs[..pattern.components].join("/").chars().collect();
                matched = matches(&pattern.tokens, &prefix);
            }
            if matched {
                excluded = !pattern.exception;
            }
        }
        excluded
    }

    /// Whether the walk must enter the excluded directory `dir`: docker does when an exception
    /// pattern starts with `dir/` (so `!**/keep` does not reach into an excluded directory).
    fn may_include_below(&self, dir: &str) -> bool {
        let dir_slash = format!("{dir}/");
        self.patterns.iter().any(|p| p.exception && format!("{}/", p.text).starts_with(&dir_slash))
    }

    /// The patterns plus the exceptions docker's CLI adds so the Dockerfile and `.dockerignore`
    /// are always sent (`TrimBuildFilesFromExcludes`).
    fn keeping_build_files(mut self, dockerfile: Option<&str>) -> Result<Dockerignore> {
        let mut extra = Vec::new();
        if self.excludes(DOCKERIGNORE, false) {
            extra.push(format!("!{DOCKERIGNORE}"));
        }
        if let Some(dockerfile) = dockerfile {
            if self.excludes(dockerfile, false) {
                extra.push(format!("!{dockerfile}"));
            }
        }
        self.patterns.extend(Dockerignore::from_patterns(&extra)?.patterns);
        Ok(self)
    }
}

/// docker's pattern-to-regexp translation, as tokens. A malformed class or a trailing `\` is
/// refused as Go's `filepath.Match` refuses it.
fn compile(pattern: &str) -> Result<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                tokens.push(if chars.peek().is_none() { Token::AnyRest } else { Token::AnyDirs });
            }
            '*' => tokens.push(Token::Star),
            '?' => tokens.push(Token::Question),
            '\\' => match chars.next() {
                Some(escaped) => tokens.push(Token::Char(escaped)),
                None => bail!("syntax error in pattern"),
            },
            '[' => {
                let negated = chars.next_if_eq(&'^').is_some();
                let mut ranges = Vec::new();
                loop {
                    let lo = match chars.next() {
                        None => bail!("syntax error in pattern"),
                        Some(']') if !ranges.is_empty() => break,
                        Some(']') => bail!("syntax error in pattern"),
                        Some('\\') => chars.next().ok_or_else(|| anyhow!("syntax error in pattern"))?,
                        Some(c) => c,
                    };
                    let mut hi = lo;
                    if chars.next_if_eq(&'-').is_some() {
                        hi = match chars.next() {
                            None | Some(']') => bail!("syntax error in pattern"),
                            Some('\\') => chars.next().ok_or_else(|| anyhow!("syntax error in pattern"))?,
                            Some(c) => c,
                        };
                        if hi < lo {
                            bail!("syntax error in pattern");
                        }
                    }
                    ranges.push((lo, hi));
                }
                tokens.push(Token::Class { negated, ranges });
            }
            c => tokens.push(Token::Char(c)),
        }
    }
    Ok(tokens)
}

/// Whether `tokens` match all of `path`.
fn matches(tokens: &[Token], path: &[char]) -> bool {
    let Some((token, rest)) = tokens.split_first() else {
        return path.is_empty();
    };
    match token {
        Token::Char(c) => path.first() == Some(c) && matches(rest, &path[1..]),
        Token::Question => path.first().is_some_and(|&c| c != '/') && matches(rest, &path[1..]),
        Token::Class { negated, ranges } => {
            path.first().is_some_and(|&c| {
                let inside = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                inside != *negated
            }) && matches(rest, &path[1..])
        }
        Token::Star => {
            for skip in 0..=path.len() {
                if matches(rest, &path[skip..]) {
                    return true;
                }
                if path.get(skip) == Some(&'/') {
                    break;
                }
            }
            false
        }
        Token::AnyDirs => {
            matches(rest, path) || path.iter().enumerate().any(|(at, &c)| c == '/' && matches(rest, &path[at + 1..]))
        }
        Token::AnyRest => true,
    }
}

/// Go's `filepath.Clean` for `/`-separated paths.
/// Go's `filepath.Clean`.
pub fn clean_path(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// A directory context as docker's CLI sends it: everything `.dockerignore` leaves (walked in
/// name order, symlinks not followed, hard links as links to their first name, owners 0:0 as
/// docker's CLI sets them), always with the Dockerfile and `.dockerignore`. Collected first, then
/// written as a tar ([`DirContext::write_tar`]), all of it or (for a context berthd keeps
/// between builds) all but the regular files berthd already has.
pub struct DirContext {
    /// The context directory, canonical.
    pub dir: PathBuf,
    /// The Dockerfile's name inside the context.
    pub dockerfile: String,
    pub entries: Vec<ContextEntry>,
}

/// One entry of the context, in tar order.
pub struct ContextEntry {
    /// Relative, `/`-separated (directories without their trailing `/`).
    pub rel_path: String,
    header: tar::Header,
    /// A symlink's target or a hard link's first name.
    link: Option<PathBuf>,
    content: Content,
    /// Regular files read from disk: the stat fields that change whenever the file does (device,
    /// inode, size, times in nanoseconds). Empty (always sent) for generated files and for files
    /// changed so recently that another change in the same clock tick could go unseen.
    pub fingerprint: String,
}

enum Content {
    None,
    File(PathBuf),
    Bytes(Vec<u8>),
}

impl ContextEntry {
    /// Whether this is a regular file (the entries whose content can be left out).
    pub fn is_regular(&self) -> bool {
        self.header.entry_type() == tar::EntryType::Regular
    }

    /// The entry as Builder.Build's context sync describes it.
    pub fn to_proto(&self) -> berth_proto::build::ContextEntry {
        let regular = self.is_regular();
        berth_proto::build::ContextEntry {
            path: self.rel_path.clone(),
            kind: u32::from(self.header.entry_type().as_byte()),
            mode: if regular { self.header.mode().unwrap_or(0) } else { 0 },
            mtime: if regular { self.header.mtime().ok().and_then(|m| i64::try_from(m).ok()).unwrap_or(0) } else { 0 },
            size: if regular { self.header.size().unwrap_or(0) } else { 0 },
            fingerprint: if regular { self.fingerprint.clone() } else { String::new() },
            ..Default::default()
        }
    }
}

impl DirContext {
    /// Walks `context_dir` as docker's CLI does. `dockerfile` is `-f`'s path, relative to the
    /// working directory; by default `<context>/Dockerfile` (or `<context>/dockerfile`). A
    /// Dockerfile outside the context is added as `.dockerfile.<20 hex digits>` and named in the
    /// sent `.dockerignore`, as docker does.
    pub fn collect(context_dir: &Path, dockerfile: Option<&Path>) -> Result<DirContext> {
        let context = fs::canonicalize(context_dir).map_err(|_| {
            anyhow!("unable to prepare context: path {:?} not found", context_dir.display().to_string())
        })?;
        if !context.is_dir() {
            bail!("unable to prepare context: context must be a directory: {}", context.display());
        }
        let dockerfile_path = resolve_dockerfile(&context, dockerfile)?;
        let inside = dockerfile_path.strip_prefix(&context).ok().map(|rel| rel.to_string_lossy().into_owned());

        let ignore_text = match fs::read_to_string(context.join(DOCKERIGNORE)) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", context.join(DOCKERIGNORE).display())),
        };
        let ignore = Dockerignore::parse(&ignore_text)?.keeping_build_files(inside.as_deref())?;

        let external = match inside {
            Some(_) => None,
            None => {
                let content = fs::read(&dockerfile_path)
                    .with_context(|| format!("reading the Dockerfile {}", dockerfile_path.display()))?;
                Some((format!(".dockerfile.{}", random_hex(10)?), content))
            }
        };

        let mut walker = Walker {
            entries: Vec::new(),
            ignore: &ignore,
            hard_links: HashMap::new(),
            external_name: external.as_ref().map(|(name, _)| name.as_str()),
            dockerignore_sent: false,
            racy_after: unix_now_nanos().saturating_sub(RACY_NANOS),
        };
        walker.walk(&context, "")?;
        let Walker { mut entries, dockerignore_sent, .. } = walker;
        let dockerfile = match (inside, external) {
            (Some(rel), _) => rel,
            (None, Some((name, content))) => {
                entries.push(generated(&name, content));
                if !dockerignore_sent {
                    entries.push(generated(DOCKERIGNORE, format!("{DOCKERIGNORE}\n{name}\n").into_bytes()));
                }
                name
            }
            (None, None) => DEFAULT_DOCKERFILE.into(),
        };
        Ok(DirContext { dir: context, dockerfile, entries })
    }

    /// The key berthd keeps this context under between builds: a digest of the directory's
    /// path (the same directory built again finds its files there).
    pub fn key(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"berth build context\0");
        h.update(self.dir.as_os_str().as_encoded_bytes());
        hex::encode(h.finalize())
    }

    /// Writes the tar: every entry, but a regular file only when `send(index)` says so.
    pub fn write_tar<W: Write>(&self, send: impl Fn(usize) -> bool, out: W) -> Result<()> {
        let mut tar = tar::Builder::new(out);
        for (index, entry) in self.entries.iter().enumerate() {
            if entry.is_regular() && !send(index) {
                continue;
            }
            let mut header = entry.header.clone();
            let what = || format!("adding {} to the build context", entry.rel_path);
            match (&entry.link, &entry.content) {
                (Some(target), _) => tar.append_link(&mut header, &entry.rel_path, target).with_context(what)?,
                (None, Content::File(path)) => {
                    let file = File::open(path).map_err(|e| unreadable(path, e))?;
                    let size = header.size().unwrap_or(0);
                    let exact = Exact { inner: file.take(size), left: size, path };
                    tar.append_data(&mut header, &entry.rel_path, exact).with_context(what)?;
                }
                (None, Content::Bytes(bytes)) => {
                    tar.append_data(&mut header, &entry.rel_path, bytes.as_slice()).with_context(what)?
                }
                (None, Content::None) => {
                    let name = if header.entry_type() == tar::EntryType::Directory {
                        format!("{}/", entry.rel_path)
                    } else {
                        entry.rel_path.clone()
                    };
                    tar.append_data(&mut header, name, std::io::empty()).with_context(what)?
                }
            }
        }
        tar.finish().context("writing the build context")?;
        Ok(())
    }
}

/// A file changed less than this long before the walk is always sent: a second change within
/// the same tick of the kernel's coarse clock would leave its stat fields as they were.
const RACY_NANOS: u64 = 2_000_000_000;

/// A file's bytes, exactly as many as its header says (a file that shrank while being sent is
/// an error, not a corrupt tar).
struct Exact<'a, R> {
    inner: R,
    left: u64,
    path: &'a Path,
}

impl<R: Read> Read for Exact<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(std::io::Error::new(
                ErrorKind::UnexpectedEof,
                format!("{} changed while it was being sent", self.path.display()),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A file docker's CLI makes up (the outside Dockerfile, the `.dockerignore` naming it): mode
/// 0600, owned by root, modified now; always sent.
fn generated(name: &str, content: Vec<u8>) -> ContextEntry {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o600);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(unix_now());
    header.set_size(content.len() as u64);
    ContextEntry {
        rel_path: name.to_string(),
        header,
        link: None,
        content: Content::Bytes(content),
        fingerprint: String::new(),
    }
}

fn unreadable(path: &Path, e: std::io::Error) -> anyhow::Error {
    match e.kind() {
        ErrorKind::PermissionDenied => {
            anyhow!("error checking context: 'no permission to read from '{}''.", path.display())
        }
        _ => anyhow!(e).context(format!("opening {}", path.display())),
    }
}

/// The Dockerfile's real path, as docker's `getDockerfileRelPath` finds it.
fn resolve_dockerfile(context: &Path, dockerfile: Option<&Path>) -> Result<PathBuf> {
    let path = match dockerfile {
        Some(given) => std::path::absolute(given)
            .with_context(|| format!("unable to get absolute path to Dockerfile {}", given.display()))?,
        None => {
            let default = context.join(DEFAULT_DOCKERFILE);
            let lowercase = context.join(DEFAULT_DOCKERFILE.to_lowercase());
            if fs::symlink_metadata(&default).is_err() && fs::symlink_metadata(&lowercase).is_ok() {
                lowercase
            } else {
                default
            }
        }
    };
    fs::canonicalize(&path).map_err(|e| {
        anyhow!(
            "unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat {}: {e}",
            path.display()
        )
    })
}

struct Walker<'a> {
    entries: Vec<ContextEntry>,
    ignore: &'a Dockerignore,
    /// The first name of each hard-linked inode sent.
    hard_links: HashMap<(u64, u64), String>,
    /// The generated Dockerfile name to add to `.dockerignore`, for a Dockerfile outside.
    external_name: Option<&'a str>,
    dockerignore_sent: bool,
    /// Files whose times are after this (ns since the epoch) get no fingerprint.
    racy_after: u64,
}

impl Walker<'_> {
    /// Collects the directory `dir` (`rel` inside the context, "" for the context itself), its
    /// entries in name order.
    fn walk(&mut self, dir: &Path, rel: &str) -> Result<()> {
        let entries = fs::read_dir(dir).map_err(|e| check_error(dir, &e, "can't stat"))?;
        let mut names = Vec::new();
        for entry in entries {
            names.push(entry.map_err(|e| check_error(dir, &e, "can't stat"))?.file_name());
        }
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let name = name.to_str().ok_or_else(|| anyhow!("{}: file name is not UTF-8", path.display()))?;
            let rel_path = if rel.is_empty() { name.to_string() } else { format!("{rel}/{name}") };
            let meta = fs::symlink_metadata(&path).map_err(|e| check_error(&path, &e, "can't stat"))?;
            if self.ignore.excludes(&rel_path, meta.is_dir()) {
                if meta.is_dir() && self.ignore.may_include_below(&rel_path) {
                    self.walk(&path, &rel_path)?;
                }
                continue;
            }
            self.add(&path, rel_path.clone(), &meta)?;
            if meta.is_dir() {
                self.walk(&path, &rel_path)?;
            }
        }
        Ok(())
    }

    fn add(&mut self, path: &Path, rel_path: String, meta: &Metadata) -> Result<()> {
        let file_type = meta.file_type();
        if file_type.is_socket() {
            return Ok(()); // docker's archive cannot hold sockets and leaves them out
        }
        let mut header = tar::Header::new_gnu();
        header.set_mode(meta.mode());
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
        header.set_size(0);
        let mut entry =
            ContextEntry { rel_path, header, link: None, content: Content::None, fingerprint: String::new() };
        if file_type.is_dir() {
            entry.header.set_entry_type(tar::EntryType::Directory);
        } else if file_type.is_symlink() {
            let target = fs::read_link(path).with_context(|| format!("reading the symlink {}", path.display()))?;
            entry.header.set_entry_type(tar::EntryType::Symlink);
            entry.link = Some(target);
        } else if let Some(first) = self.second_link(meta, &entry.rel_path) {
            entry.header.set_entry_type(tar::EntryType::Link);
            entry.link = Some(first.into());
        } else if file_type.is_fifo() || file_type.is_char_device() || file_type.is_block_device() {
            let context = || format!("adding {} to the build context", path.display());
            entry.header.set_entry_type(if file_type.is_fifo() {
                tar::EntryType::Fifo
            } else if file_type.is_char_device() {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            });
            if !file_type.is_fifo() {
                let rdev = meta.rdev();
                entry.header.set_device_major(libc_major(rdev)).with_context(context)?;
                entry.header.set_device_minor(libc_minor(rdev)).with_context(context)?;
            }
        } else {
            // Opened now, as docker's CLI checks every file before it sends anything.
            let mut file = File::open(path).map_err(|e| unreadable(path, e))?;
            entry.header.set_entry_type(tar::EntryType::Regular);
            if entry.rel_path == DOCKERIGNORE {
                if let Some(name) = self.external_name {
                    self.dockerignore_sent = true;
                    let mut content = Vec::new();
                    file.read_to_end(&mut content)
                        .with_context(|| format!("adding {} to the build context", path.display()))?;
                    content.extend_from_slice(format!("\n{name}\n").as_bytes());
                    entry.header.set_size(content.len() as u64);
                    entry.content = Content::Bytes(content);
                    self.entries.push(entry);
                    return Ok(());
                }
            }
            entry.header.set_size(meta.len());
            entry.content = Content::File(path.to_path_buf());
            entry.fingerprint = self.fingerprint(meta);
        }
        self.entries.push(entry);
        Ok(())
    }

    /// A hard-linked inode's first name, if this is not it (which is then recorded).
    fn second_link(&mut self, meta: &Metadata, rel_path: &str) -> Option<String> {
        if meta.nlink() <= 1 || meta.is_dir() {
            return None;
        }
        match self.hard_links.get(&(meta.dev(), meta.ino())) {
            Some(first) => Some(first.clone()),
            None => {
                self.hard_links.insert((meta.dev(), meta.ino()), rel_path.to_string());
                None
            }
        }
    }

    fn fingerprint(&self, meta: &Metadata) -> String {
        let nanos = |secs: i64, nsecs: i64| {
            u64::try_from(secs)
                .unwrap_or(0)
                .saturating_mul(1_000_000_000)
                .saturating_add(u64::try_from(nsecs).unwrap_or(0))
        };
        let (mtime, ctime) = (nanos(meta.mtime(), meta.mtime_nsec()), nanos(meta.ctime(), meta.ctime_nsec()));
        if mtime >= self.racy_after || ctime >= self.racy_after {
            return String::new();
        }
        format!("{}:{}:{}:{mtime}:{ctime}", meta.dev(), meta.ino(), meta.len())
    }
}

/// docker's context check messages for a path it cannot stat or read.
fn check_error(path: &Path, e: &std::io::Error, what: &str) -> anyhow::Error {
    if e.kind() == ErrorKind::PermissionDenied {
        anyhow!("error checking context: '{what} '{}''.", path.display())
    } else {
        anyhow!("error checking context: '{}: {e}'.", path.display())
    }
}

/// glibc's `gnu_dev_major`.
fn libc_major(rdev: u64) -> u32 {
    (((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0x0000_0fff)) as u32
}

/// glibc's `gnu_dev_minor`.
fn libc_minor(rdev: u64) -> u32 {
    (((rdev >> 12) & 0xffff_ff00) | (rdev & 0x0000_00ff)) as u32
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn unix_now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)).unwrap_or(0)
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("reading /dev/urandom for the Dockerfile's name")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The context of `berth build -`: stdin holds an archive, sent as it is (docker's CLI sends a
/// compressed one, gzip, bzip2 or xz, untouched for the daemon to decompress), or a lone
/// Dockerfile, which becomes a one-file tar. Returns the context bytes and the Dockerfile's name.
pub fn stdin_context(input: Vec<u8>) -> Result<(Vec<u8>, String)> {
    if is_archive(&input) {
        return Ok((input, DEFAULT_DOCKERFILE.into()));
    }
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    // As docker's CLI writes stdin to a file it creates (0666 less the usual umask) and tars it.
    header.set_mode(0o100644);
    header.set_uid(u64::from(nix::unistd::getuid().as_raw()));
    header.set_gid(u64::from(nix::unistd::getgid().as_raw()));
    header.set_mtime(unix_now());
    header.set_size(input.len() as u64);
    let mut tar = tar::Builder::new(Vec::new());
    tar.append_data(&mut header, DEFAULT_DOCKERFILE, input.as_slice()).context("making the build context")?;
    let bytes = tar.into_inner().context("making the build context")?;
    Ok((bytes, DEFAULT_DOCKERFILE.into()))
}

/// The compressions docker's `DetectCompression` knows, by their magic numbers.
const COMPRESSION_MAGICS: [&[u8]; 3] = [
    &[0x1f, 0x8b, 0x08],                   // gzip
    b"BZh",                                // bzip2
    &[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], // xz
];

/// docker's `IsArchive`: a known compression, or a first block that is a valid tar header.
fn is_archive(input: &[u8]) -> bool {
    if COMPRESSION_MAGICS.iter().any(|magic| input.starts_with(magic)) {
        return true;
    }
    let Some(block) = input.get(..512) else {
        return false;
    };
    if block.iter().all(|&b| b == 0) {
        return false;
    }
    let field = &block[148..156];
    let digits = std::str::from_utf8(field).unwrap_or("").trim_matches(|c| c == ' ' || c == '\0');
    let Ok(recorded) = u64::from_str_radix(digits, 8) else {
        return false;
    };
    let unsigned: u64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| if (148..156).contains(&i) { u64::from(b' ') } else { u64::from(b) })
        .sum();
    let signed: i64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| if (148..156).contains(&i) { i64::from(b' ') } else { i64::from(b as i8) })
        .sum();
    recorded == unsigned || i64::try_from(recorded).is_ok_and(|r| r == signed)
}

#[cfg(test)]
mod tests;
