//! `berth cp`: files between a container and the host, or a tar stream on stdin/stdout, with
//! docker's path rules and messages (its CLI's `cp` and `archive` package). The container side is
//! berthd's (Containers.StatPath, ArchivePath, ExtractToDir); the host side is the client's, as in
//! docker: it tars local files itself, and unpacks what comes out of a container with the rights
//! of the user running it and without chown (files get that user as owner, as docker's do).

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use berth_proto::chunks::ChunkReader;
use berth_proto::containers::{ArchiveChunk, ArchivePathRequest, ExtractToDirRequest, PathStat, StatPathRequest};
use tokio::sync::mpsc;
use ttrpc::r#async::ClientStreamReceiver;
use ttrpc::Code;

use super::load::ChunkSender;
use crate::build_context::clean_path;
use crate::daemon::{ctx, Berthd, PlainMessage};

/// Copy files/folders between a container and the local filesystem.
///
/// `berth cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-` or
/// `berth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH`. `-` is a tar stream on stdin or stdout.
#[derive(clap::Args, Debug)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information).
    #[arg(short = 'a', long = "archive")]
    archive: bool,
    /// Always follow symbol link in SRC_PATH.
    #[arg(short = 'L', long = "follow-link")]
    follow_link: bool,
    /// CONTAINER:SRC_PATH, SRC_PATH or `-`.
    source: String,
    /// DEST_PATH, `-` or CONTAINER:DEST_PATH.
    destination: String,
}

/// Chunks of a tar stream in flight between the network and the local disk.
const CHUNKS_IN_FLIGHT: usize = 4;

pub async fn run(berthd: &Berthd, args: &CpArgs) -> Result<()> {
    let (source_container, source_path) = split_cp_arg(&args.source);
    let (destination_container, destination_path) = split_cp_arg(&args.destination);
    match (source_container, destination_container) {
        (Some(container), None) => {
            copy_from_container(berthd, container, source_path, destination_path, args.follow_link).await
        }
        (None, Some(container)) => copy_to_container(berthd, container, source_path, destination_path, args).await,
        (Some(_), Some(_)) => Err(PlainMessage("copying between containers is not supported".into()).into()),
        (None, None) => Err(PlainMessage("must specify at least one container source".into()).into()),
    }
}

/// docker's splitCpArg: `CONTAINER:PATH`, unless the argument is an absolute path or a relative
/// one starting with `.` (`./file:name`).
fn split_cp_arg(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((container, path)) if !container.starts_with('.') => (Some(container), path),
        _ => (None, arg),
    }
}

/// A NOT_FOUND from berthd as docker's client words it for the archive endpoints.
fn no_such_container_path(err: ttrpc::Error, container: &str, path: &str) -> anyhow::Error {
    match &err {
        ttrpc::Error::RpcStatus(status) if status.code() == Code::NOT_FOUND => {
            PlainMessage(format!("Error: No such container:path: {container}:{path}")).into()
        }
        _ => err.into(),
    }
}

async fn stat_path(berthd: &Berthd, container: &str, path: &str) -> Result<PathStat, ttrpc::Error> {
    let request = StatPathRequest { id: container.to_string(), path: path.to_string(), ..Default::default() };
    let response = berthd.containers().stat_path(ctx(), &request).await?;
    Ok(response.stat.into_option().unwrap_or_default())
}

fn is_dir(mode: u32) -> bool {
    mode & nix::libc::S_IFMT == nix::libc::S_IFDIR
}

fn is_symlink(mode: u32) -> bool {
    mode & nix::libc::S_IFMT == nix::libc::S_IFLNK
}

async fn copy_from_container(
    berthd: &Berthd,
    container: &str,
    source: &str,
    destination: &str,
    follow_link: bool,
) -> Result<()> {
    let destination = if destination == "-" {
        destination.to_string()
    } else {
        let resolved = resolve_local_path(destination)?;
        validate_output_path(&resolved)?;
        resolved
    };
    let mut source = source.to_string();
    let mut rebase_name = None;
    if follow_link {
        if let Ok(stat) = stat_path(berthd, container, &source).await {
            if is_symlink(stat.mode) {
                let mut target = stat.link_target.clone();
                if !target.starts_with('/') {
                    target = join(&split_path_dir_entry(&source).0, &target);
                }
                let (resolved, rebase) = get_rebase_name(&source, &target);
                source = resolved;
                rebase_name = rebase;
            }
        }
    }

    let request = ArchivePathRequest { id: container.to_string(), path: source.clone(), ..Default::default() };
    let mut stream = berthd
        .containers()
        .archive_path(ctx(), &request)
        .await
        .map_err(|e| no_such_container_path(e, container, &source))?;
    let first = stream.recv().await.map_err(|e| no_such_container_path(e, container, &source))?;
    let stat = first.and_then(|chunk| chunk.stat.into_option()).ok_or_else(|| anyhow!("berthd sent no stat"))?;

    if destination == "-" {
        let mut stdout = io::stdout().lock();
        while let Some(chunk) = stream.recv().await? {
            stdout.write_all(&chunk.data)?;
        }
        stdout.flush()?;
        return Ok(());
    }

    let source_info = CopyInfo { path: source, exists: true, is_dir: is_dir(stat.mode), rebase_name };
    let mut renames = Vec::new();
    if let Some(rebase) = &source_info.rebase_name {
        renames.push((split_path_dir_entry(&source_info.path).1, rebase.clone()));
    }
    let destination_info = copy_info_destination_path(&destination)?;
    let (dir, rename) = prepare_archive_copy(&source_info, &destination_info)?;
    renames.extend(rename);

    let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let unpacker = tokio::task::spawn_blocking(move || untar(ChunkReader::new(rx), Path::new(&dir), &renames));
    let mut received = Ok(());
    loop {
        match stream.recv().await {
            Ok(Some(chunk)) => {
                if tx.send(Ok(chunk.data)).await.is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                let _ = tx.send(Err(io::Error::new(io::ErrorKind::UnexpectedEof, e.to_string()))).await;
                received = Err(e);
                break;
            }
        }
    }
    drop(tx);
    let unpacked = unpacker.await.context("the unpacking task failed")?;
    received?;
    unpacked
}

async fn copy_to_container(
    berthd: &Berthd,
    container: &str,
    source: &str,
    destination: &str,
    args: &CpArgs,
) -> Result<()> {
    let source = if source == "-" { source.to_string() } else { resolve_local_path(source)? };
    let mut destination_info = CopyInfo { path: destination.to_string(), ..Default::default() };
    let mut stat = stat_path(berthd, container, destination).await;
    if let Ok(found) = &stat {
        if is_symlink(found.mode) {
            let mut target = found.link_target.clone();
            if !target.starts_with('/') {
                target = join(&split_path_dir_entry(destination).0, &target);
            }
            destination_info.path = target.clone();
            stat = stat_path(berthd, container, &target).await;
        }
    }
    if let Ok(found) = &stat {
        if let Some(problem) = not_dir_or_regular(found.mode) {
            return Err(PlainMessage(format!(
                "destination \"{container}:{destination}\" must be a directory or a regular file: {problem}"
            ))
            .into());
        }
        destination_info.exists = true;
        destination_info.is_dir = is_dir(found.mode);
    }

    let (dir, content) = if source == "-" {
        if !destination_info.is_dir {
            return Err(PlainMessage(format!("destination \"{container}:{destination}\" must be a directory")).into());
        }
        (destination_info.path.clone(), Content::Stdin)
    } else {
        let source_info = copy_info_source_path(&source, args.follow_link)?;
        let (dir, rename) = prepare_archive_copy(&source_info, &destination_info)?;
        let (_, base) = split_path_dir_entry(&source_info.path);
        let name = match (rename, &source_info.rebase_name) {
            (Some((_, new)), _) => new,
            (None, Some(rebase)) => rebase.clone(),
            (None, None) => base,
        };
        (dir, Content::Local { path: PathBuf::from(&source_info.path), name })
    };

    // The tar is made (or read from stdin) on a blocking thread and sent in chunks.
    let (tx, mut rx) = mpsc::channel::<io::Result<Vec<u8>>>(CHUNKS_IN_FLIGHT);
    let producer = tokio::task::spawn_blocking(move || {
        let mut out = ChunkSender::new(tx.clone());
        let written = match content {
            Content::Stdin => io::copy(&mut io::stdin().lock(), &mut out).map(|_| ()),
            Content::Local { path, name } => tar_local(&path, &name, &mut out),
        };
        if let Err(e) = written.and_then(|()| out.flush()) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let mut sender = berthd.containers().extract_to_dir(ctx()).await?;
    let mut request = ExtractToDirRequest {
        id: container.to_string(),
        path: dir.clone(),
        copy_uid_gid: args.archive,
        no_overwrite_dir_non_dir: true,
        ..Default::default()
    };
    let mut local_error = None;
    let mut first = true;
    while let Some(next) = rx.recv().await {
        match next {
            Ok(data) => request.data = data,
            Err(e) => {
                // berthd must not take what it got so far for the whole tar: a block that is no
                // tar header ends its extraction with an error.
                request.data = vec![0xff; 512];
                local_error = Some(e);
            }
        }
        if sender.send(&request).await.is_err() {
            break;
        }
        first = false;
        request = ExtractToDirRequest::default();
        if local_error.is_some() {
            break;
        }
    }
    drop(rx);
    if first {
        // An empty stdin: the request alone.
        let _ = sender.send(&request).await;
    }
    let _ = producer.await;
    let response = sender.close_and_recv().await;
    if let Some(e) = local_error {
        return Err(anyhow::Error::new(e).context("reading the source"));
    }
    response.map_err(|e| no_such_container_path(e, container, &dir))?;
    Ok(())
}

/// What `cp` sends into a container.
enum Content {
    /// A tar stream on stdin, as it is.
    Stdin,
    /// A tar made of the local `path`, its entries named `name` and `name/…`.
    Local { path: PathBuf, name: String },
}

/// docker's ValidateOutputPathFileMode: why a path of this mode cannot be written to.
fn not_dir_or_regular(mode: u32) -> Option<&'static str> {
    match mode & nix::libc::S_IFMT {
        nix::libc::S_IFBLK | nix::libc::S_IFCHR => Some("got a device"),
        nix::libc::S_IFIFO => Some("got a named pipe"),
        nix::libc::S_IFSOCK => Some("got a socket"),
        nix::libc::S_IFLNK => Some("got a symlink"),
        _ => None,
    }
}

/// docker's ValidateOutputPath: the parent directory must exist; an existing path must be a
/// directory or a regular file.
pub fn validate_output_path(path: &str) -> Result<()> {
    let dir = dir_name(&clean_path(path));
    if !dir.is_empty() && dir != "." && !Path::new(&dir).exists() {
        return Err(PlainMessage(format!("invalid output path: directory {dir:?} does not exist")).into());
    }
    if let Ok(meta) = fs::metadata(path) {
        if !meta.is_dir() && !meta.is_file() {
            let problem = not_dir_or_regular(meta.mode()).unwrap_or("got an irregular file");
            return Err(PlainMessage(format!(
                "invalid output path: {path:?} must be a directory or a regular file: {problem}"
            ))
            .into());
        }
    }
    Ok(())
}

/// What one side of a copy is (docker's archive.CopyInfo).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct CopyInfo {
    path: String,
    exists: bool,
    is_dir: bool,
    rebase_name: Option<String>,
}

/// Go's filepath.Dir.
fn dir_name(path: &str) -> String {
    match path.rfind('/') {
        Some(0) => "/".to_string(),
        Some(i) => clean_path(&path[..i]),
        None => ".".to_string(),
    }
}

/// Go's filepath.Base.
fn base_name(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return if path.is_empty() { ".".to_string() } else { "/".to_string() };
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_string()
}

/// Go's filepath.Join of two elements.
fn join(dir: &str, name: &str) -> String {
    clean_path(&format!("{dir}/{name}"))
}

fn has_trailing_separator(path: &str) -> bool {
    path.ends_with('/')
}

fn specifies_current_dir(path: &str) -> bool {
    base_name(path) == "."
}

fn asserts_directory(path: &str) -> bool {
    has_trailing_separator(path) || specifies_current_dir(path)
}

/// docker's PreserveTrailingDotOrSeparator.
fn preserve_trailing_dot_or_separator(cleaned: &str, original: &str) -> String {
    let mut out = cleaned.to_string();
    if !specifies_current_dir(&out) && specifies_current_dir(original) {
        if !has_trailing_separator(&out) {
            out.push('/');
        }
        out.push('.');
    }
    if !has_trailing_separator(&out) && has_trailing_separator(original) {
        out.push('/');
    }
    out
}

/// docker's SplitPathDirEntry.
fn split_path_dir_entry(path: &str) -> (String, String) {
    let mut cleaned = clean_path(path);
    if specifies_current_dir(path) {
        cleaned.push_str("/.");
    }
    (dir_name(&cleaned), base_name(&cleaned))
}

/// docker's resolveLocalPath: absolute, with a trailing `/` or `/.` kept.
fn resolve_local_path(path: &str) -> Result<String> {
    let absolute = if path.starts_with('/') {
        path.to_string()
    } else {
        let cwd = std::env::current_dir().context("getting the current directory")?;
        format!("{}/{path}", cwd.display())
    };
    Ok(preserve_trailing_dot_or_separator(&clean_path(&absolute), path))
}

/// docker's GetRebaseName: `resolved` with `path`'s trailing `/` or `/.`, and the name entries
/// must get back when following a link changed the last element.
fn get_rebase_name(path: &str, resolved: &str) -> (String, Option<String>) {
    let mut resolved = resolved.to_string();
    if specifies_current_dir(path) && !specifies_current_dir(&resolved) {
        resolved.push_str("/.");
    }
    if has_trailing_separator(path) && !has_trailing_separator(&resolved) {
        resolved.push('/');
    }
    let rebase = (base_name(path) != base_name(&resolved)).then(|| base_name(path));
    (resolved, rebase)
}

/// Go's filepath.EvalSymlinks (the path must exist).
fn eval_symlinks(path: &str) -> Result<String> {
    let resolved = fs::canonicalize(if path.is_empty() { "." } else { path })
        .map_err(|e| PlainMessage(format!("lstat {path}: {}", go_error(&e))))?;
    Ok(resolved.to_string_lossy().into_owned())
}

/// An OS error as Go prints it ("no such file or directory").
fn go_error(e: &io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    let mut chars = text.chars();
    chars.next().map(|c| c.to_lowercase().chain(chars).collect()).unwrap_or_default()
}

/// docker's CopyInfoSourcePath: the local source, its parent's symlinks resolved (its own
/// too with `follow_link`).
fn copy_info_source_path(path: &str, follow_link: bool) -> Result<CopyInfo> {
    let (resolved, rebase_name) = if follow_link {
        let resolved = eval_symlinks(path)?;
        get_rebase_name(path, &resolved)
    } else {
        let (dir, base) = match path.rfind('/') {
            Some(i) => (&path[..=i], &path[i + 1..]),
            None => ("", path),
        };
        let resolved_dir = eval_symlinks(dir)?;
        let resolved = format!("{resolved_dir}/{base}");
        let rebase = (has_trailing_separator(path) && base_name(path) != base_name(&resolved)).then(|| base_name(path));
        (resolved, rebase)
    };
    let meta =
        fs::symlink_metadata(&resolved).map_err(|e| PlainMessage(format!("lstat {resolved}: {}", go_error(&e))))?;
    Ok(CopyInfo { path: resolved, exists: true, is_dir: meta.is_dir(), rebase_name })
}

/// docker's CopyInfoDestinationPath: the local destination, symlinks at its end followed; a
/// missing one needs an existing parent directory.
fn copy_info_destination_path(path: &str) -> Result<CopyInfo> {
    let mut path = path.to_string();
    let original = path.clone();
    let mut hops = 0;
    let missing = loop {
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => break path,
            Err(e) => return Err(PlainMessage(format!("lstat {path}: {}", go_error(&e))).into()),
        };
        if !meta.file_type().is_symlink() {
            return Ok(CopyInfo { path, exists: true, is_dir: meta.is_dir(), rebase_name: None });
        }
        hops += 1;
        if hops > 10 {
            return Err(PlainMessage(format!("too many symlinks in {original}")).into());
        }
        let target = fs::read_link(&path).map_err(|e| PlainMessage(format!("readlink {path}: {}", go_error(&e))))?;
        let target = target.to_string_lossy().into_owned();
        path = if target.starts_with('/') { target } else { join(&split_path_dir_entry(&path).0, &target) };
    };
    // A missing destination is fine if its parent directory exists.
    let (parent, _) = split_path_dir_entry(&missing);
    let parent_meta = fs::metadata(&parent).map_err(|e| PlainMessage(format!("stat {parent}: {}", go_error(&e))))?;
    if !parent_meta.is_dir() {
        return Err(PlainMessage("not a directory".into()).into());
    }
    Ok(CopyInfo { path: missing, ..Default::default() })
}

/// docker's PrepareArchiveCopy: the directory to extract into and how the source's entries are
/// renamed (old base, new base), if they are.
fn prepare_archive_copy(source: &CopyInfo, destination: &CopyInfo) -> Result<(String, Option<(String, String)>)> {
    let (destination_dir, destination_base) = split_path_dir_entry(&destination.path);
    let (_, source_base) = split_path_dir_entry(&source.path);
    let source_base = source.rebase_name.clone().unwrap_or(source_base);
    if destination.exists && destination.is_dir {
        return Ok((destination.path.clone(), None));
    }
    if destination.exists && source.is_dir {
        return Err(PlainMessage("cannot copy directory".into()).into());
    }
    if !destination.exists && !source.is_dir && asserts_directory(&destination.path) {
        return Err(PlainMessage("no such directory".into()).into());
    }
    Ok((destination_dir, Some((source_base, destination_base))))
}

/// Writes a tar of the local `source` (a symlink at it is archived as a link), its entries named
/// `name` and `name/…` (`.` for a directory's contents: its children's names).
fn tar_local(source: &Path, name: &str, out: impl Write) -> io::Result<()> {
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    let meta = fs::symlink_metadata(source)?;
    if meta.is_dir() && name == "." {
        for entry in fs::read_dir(source)? {
            let entry = entry?;
            let child = entry.file_name();
            if entry.file_type()?.is_dir() {
                tar.append_dir_all(&child, entry.path())?;
            } else {
                tar.append_path_with_name(entry.path(), &child)?;
            }
        }
    } else if meta.is_dir() {
        tar.append_dir_all(name, source)?;
    } else {
        tar.append_path_with_name(source, name)?;
    }
    tar.into_inner()?.flush()
}

/// Replaces the first `old` in `name` by `new` (docker's RebaseArchiveEntries; `/` as old base
/// replaces nothing of the leading separator).
fn rebase(name: &str, old: &str, new: &str) -> String {
    let old = if old == "/" { "" } else { old };
    name.replacen(old, new, 1)
}

/// Unpacks the tar `content` into `dir` as docker's client does (Untar with NoLchown and
/// NoOverwriteDirNonDir), entries renamed by `renames` in order.
fn untar(content: impl Read, dir: &Path, renames: &[(String, String)]) -> Result<()> {
    let mut archive = tar::Archive::new(content);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    let mut dir_times = Vec::new();
    for entry in archive.entries().context("reading the archive")? {
        let mut entry = entry.context("reading the archive")?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = renames.iter().fold(raw, |name, (old, new)| rebase(&name, old, new));
        let name = clean_path(&name);
        let name = name.trim_start_matches('/');
        if name == ".." || name.starts_with("../") {
            return Err(anyhow!("{name:?} is outside of {:?}", dir.display().to_string()));
        }
        let kind = entry.header().entry_type();
        let path = if name.is_empty() || name == "." { dir.to_path_buf() } else { dir.join(name) };
        if let Some(parent) = path.parent() {
            if !parent.exists() {
                fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
            }
        }
        if let Ok(existing) = fs::symlink_metadata(&path) {
            let shown = (path.display().to_string(), dir.display().to_string());
            if existing.is_dir() && !kind.is_dir() {
                return Err(PlainMessage(format!(
                    "cannot overwrite directory {:?} with non-directory {:?}",
                    shown.0, shown.1
                ))
                .into());
            }
            if !existing.is_dir() && kind.is_dir() {
                return Err(PlainMessage(format!(
                    "cannot overwrite non-directory {:?} with directory {:?}",
                    shown.0, shown.1
                ))
                .into());
            }
            if existing.is_dir() && (name.is_empty() || name == ".") {
                continue;
            }
            if !(existing.is_dir() && kind.is_dir()) {
                fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            }
        }
        if kind.is_hard_link() {
            let target = entry.link_name_bytes().map(|t| String::from_utf8_lossy(&t).into_owned()).unwrap_or_default();
            let target = clean_path(&renames.iter().fold(target, |name, (old, new)| rebase(&name, old, new)));
            let target = target.trim_start_matches('/');
            if target == ".." || target.starts_with("../") {
                return Err(anyhow!("invalid hardlink {target:?} -> {name:?}"));
            }
            fs::hard_link(dir.join(target), &path).with_context(|| format!("linking {}", path.display()))?;
            continue;
        }
        let mtime = entry.header().mtime().unwrap_or(0);
        entry.unpack(&path).with_context(|| format!("extracting {}", path.display()))?;
        if kind.is_dir() {
            dir_times.push((path, mtime));
        }
    }
    // Directories last: the files written into them changed their times.
    for (path, mtime) in dir_times.iter().rev() {
        let time = nix::sys::time::TimeSpec::new(i64::try_from(*mtime).unwrap_or(0), 0);
        nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            path,
            &time,
            &time,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .with_context(|| format!("setting the times of {}", path.display()))?;
    }
    Ok(())
}

/// Copies every chunk of an archive stream to `out`, until berthd ends it.
pub async fn copy_chunks(stream: &mut ClientStreamReceiver<ArchiveChunk>, out: &mut impl Write) -> Result<()> {
    while let Some(chunk) = stream.recv().await? {
        out.write_all(&chunk.data)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp_arguments_split_as_dockers() {
        assert_eq!(split_cp_arg("ctr:/etc"), (Some("ctr"), "/etc"));
        assert_eq!(split_cp_arg("/abs:x"), (None, "/abs:x"));
        assert_eq!(split_cp_arg("./file:name"), (None, "./file:name"));
        assert_eq!(split_cp_arg("file"), (None, "file"));
        assert_eq!(split_cp_arg("-"), (None, "-"));
    }

    #[test]
    fn paths_clean_split_and_rebase_as_go_does() {
        assert_eq!(clean_path("/a/../b/./c/"), "/b/c");
        assert_eq!(clean_path("a/.."), ".");
        assert_eq!(split_path_dir_entry("/d/."), ("/d".to_string(), ".".to_string()));
        assert_eq!(split_path_dir_entry("/d/x/"), ("/d".to_string(), "x".to_string()));
        assert_eq!(preserve_trailing_dot_or_separator("/d", "d/."), "/d/.");
        assert_eq!(preserve_trailing_dot_or_separator("/d", "d/"), "/d/");
        assert_eq!(get_rebase_name("/d/l", "/d/f"), ("/d/f".to_string(), Some("l".to_string())));
        assert_eq!(rebase("./x", ".", "new"), "new/x");
        assert_eq!(rebase("d/x", "d", "e"), "e/x");
    }

    #[test]
    fn archive_copy_follows_dockers_rules() {
        let file = CopyInfo { path: "/s/f".into(), exists: true, ..Default::default() };
        let dir = CopyInfo { path: "/s/d".into(), exists: true, is_dir: true, ..Default::default() };
        let existing_dir = CopyInfo { path: "/t".into(), exists: true, is_dir: true, ..Default::default() };
        let existing_file = CopyInfo { path: "/t/x".into(), exists: true, ..Default::default() };
        let missing = CopyInfo { path: "/t/new".into(), ..Default::default() };
        let missing_dir = CopyInfo { path: "/t/new/".into(), ..Default::default() };
        assert_eq!(prepare_archive_copy(&file, &existing_dir).expect("into a dir"), ("/t".into(), None));
        let renamed = Some(("f".to_string(), "new".to_string()));
        assert_eq!(prepare_archive_copy(&file, &missing).expect("new name"), ("/t".into(), renamed));
        assert_eq!(
            prepare_archive_copy(&dir, &existing_file).expect_err("dir onto file").to_string(),
            "cannot copy directory"
        );
        assert_eq!(
            prepare_archive_copy(&file, &missing_dir).expect_err("file to dir/").to_string(),
            "no such directory"
        );
    }
}
