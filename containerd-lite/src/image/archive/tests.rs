//! Layer apply tests. They mknod, chown and set trusted.* xattrs, so they run as root.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use super::*;

const MTIME: u64 = 1_600_000_000;
const DIR_MTIME: u64 = 1_500_000_000;
const SECRET: &[u8] = b"do not touch";

/// A layer tar built in memory; names are written raw so hostile ones get through.
struct Layer {
    builder: tar::Builder<Vec<u8>>,
}

impl Layer {
    fn new() -> Layer {
        Layer { builder: tar::Builder::new(Vec::new()) }
    }

    fn entry(&mut self, kind: EntryType, name: &str, link: &str, mode: u32, data: &[u8]) -> &mut Layer {
        self.entry_owned(kind, name, link, mode, (0, 0), data)
    }

    fn entry_owned(
        &mut self,
        kind: EntryType,
        name: &str,
        link: &str,
        mode: u32,
        (uid, gid): (u64, u64),
        data: &[u8],
    ) -> &mut Layer {
        let mut header = Header::new_gnu();
        let raw = header.as_old_mut();
        raw.name[..name.len()].copy_from_slice(name.as_bytes());
        raw.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(uid);
        header.set_gid(gid);
        header.set_mtime(if kind == EntryType::Directory { DIR_MTIME } else { MTIME });
        header.set_size(data.len() as u64);
        header.set_cksum();
        self.builder.append(&header, data).expect("append to an in-memory tar");
        self
    }

    fn dir(&mut self, name: &str, mode: u32) -> &mut Layer {
        self.entry(EntryType::Directory, name, "", mode, b"")
    }

    fn file(&mut self, name: &str, data: &[u8]) -> &mut Layer {
        self.entry(EntryType::Regular, name, "", 0o644, data)
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Layer {
        self.entry(EntryType::Symlink, name, target, 0o777, b"")
    }

    fn hardlink(&mut self, name: &str, target: &str) -> &mut Layer {
        self.entry(EntryType::Link, name, target, 0o644, b"")
    }

    fn device(&mut self, kind: EntryType, name: &str, major: u32, minor: u32) -> &mut Layer {
        let mut header = Header::new_gnu();
        header.set_path(name).expect("device name");
        header.set_entry_type(kind);
        header.set_mode(0o666);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(MTIME);
        header.set_size(0);
        header.set_device_major(major).expect("device major");
        header.set_device_minor(minor).expect("device minor");
        header.set_cksum();
        self.builder.append(&header, &b""[..]).expect("append to an in-memory tar");
        self
    }

    /// PAX records for the next entry.
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Layer {
        let mut data = Vec::new();
        for (key, value) in records {
            let body = 1 + key.len() + 1 + value.len() + 1;
            // The length counts its own digits.
            let mut len = body + body.to_string().len();
            if len.to_string().len() != body.to_string().len() {
                len += 1;
            }
            data.extend_from_slice(format!("{len} {key}=").as_bytes());
            data.extend_from_slice(value);
            data.push(b'\n');
        }
        self.entry(EntryType::XHeader, "PaxHeaders/next", "", 0o644, &data)
    }

    fn finish(&mut self) -> Vec<u8> {
        self.builder.finish().expect("finish an in-memory tar");
        let mut tar = std::mem::take(self.builder.get_mut());
        // Pad to a whole 10 KiB record like tar(1) does: the diff_id must cover it.
        tar.resize(tar.len().div_ceil(10240) * 10240, 0);
        tar
    }
}

/// A temp dir holding `dest` and a sibling `outside` with one secret file: a hostile layer
/// must leave everything but `dest` exactly so.
struct Fixture {
    _top: tempfile::TempDir,
    top: PathBuf,
    dest: PathBuf,
    outside: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let top = tempfile::tempdir_in("/tmp").expect("tempdir");
        let top_path = top.path().to_path_buf();
        let dest = top_path.join("dest");
        let outside = top_path.join("outside");
        fs::create_dir(&dest).expect("create dest");
        fs::create_dir(&outside).expect("create outside");
        fs::write(outside.join("secret"), SECRET).expect("write secret");
        Fixture { _top: top, top: top_path, dest, outside }
    }

    fn apply(&self, tar: &[u8]) -> Result<Applied, ArchiveError> {
        apply_layer(tar, Compression::None, &self.dest)
    }

    fn assert_outside_untouched(&self) {
        assert_eq!(names(&self.top), ["dest", "outside"].map(String::from).into(), "sibling of dest created");
        assert_eq!(names(&self.outside), ["secret"].map(String::from).into(), "file created outside dest");
        let secret = self.outside.join("secret");
        assert_eq!(fs::read(&secret).expect("read secret"), SECRET);
        assert_eq!(fs::symlink_metadata(&secret).expect("lstat secret").nlink(), 1, "secret was hard-linked");
    }
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .collect()
}

fn lstat(path: &Path) -> fs::Metadata {
    fs::symlink_metadata(path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()))
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let path = CString::new(path.as_os_str().as_bytes()).ok()?;
    let name = CString::new(name).ok()?;
    let mut value = vec![0u8; 256];
    // SAFETY: `path` and `name` are NUL-terminated and `value` is a live buffer of `value.len()`
    // bytes that the kernel writes at most that many bytes into.
    let len = unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), value.as_mut_ptr().cast(), value.len()) };
    value.truncate(usize::try_from(len).ok()?);
    Some(value)
}

/// One line per node under `root`: enough to compare two applied trees.
fn tree(root: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("dir entry").path();
            let md = lstat(&path);
            let detail = if md.file_type().is_symlink() {
                fs::read_link(&path).expect("readlink").display().to_string()
            } else if md.is_file() {
                Digest::sha256(&fs::read(&path).expect("read")).to_string()
            } else {
                format!("rdev={}", md.rdev())
            };
            if md.is_dir() {
                pending.push(path.clone());
            }
            let rel = path.strip_prefix(root).expect("under root").display().to_string();
            lines.push(format!("{rel} {:o} {}:{} {} {detail}", md.mode(), md.uid(), md.gid(), md.mtime()));
        }
    }
    lines.sort();
    lines
}

fn gzip(raw: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(raw).expect("gzip");
    encoder.finish().expect("gzip")
}

fn zstd(raw: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(raw, 3).expect("zstd")
}

fn normal_layer() -> Vec<u8> {
    let mut layer = Layer::new();
    layer
        .dir("usr/", 0o755)
        .dir("usr/bin/", 0o755)
        .entry(EntryType::Regular, "usr/bin/su", "", 0o4755, b"#!/bin/sh\n")
        .dir("tmp/", 0o1777)
        .dir("home/", 0o755)
        .entry_owned(EntryType::Directory, "home/user/", "", 0o700, (1000, 1000), b"")
        .entry_owned(EntryType::Regular, "home/user/notes", "", 0o600, (1000, 1000), b"hello")
        .symlink("usr/bin/sh", "../../bin/busybox")
        .hardlink("usr/bin/su-again", "usr/bin/su")
        .device(EntryType::Char, "dev/null", 1, 3)
        .device(EntryType::Fifo, "run/initctl", 0, 0)
        .pax(&[("SCHILY.xattr.user.foo", b"bar"), ("mtime", b"1600000000.5")])
        .file("etc/with-xattr", b"x");
    layer.finish()
}

#[test]
fn normal_layer_recreates_contents_modes_owners_links_devices_and_times() {
    let fx = Fixture::new();
    let raw = normal_layer();
    fx.apply(&raw).expect("apply");
    let d = &fx.dest;

    let su = lstat(&d.join("usr/bin/su"));
    assert!(su.is_file());
    assert_eq!(su.mode() & 0o7777, 0o4755);
    assert_eq!(fs::read(d.join("usr/bin/su")).expect("read su"), b"#!/bin/sh\n");
    assert_eq!(su.mtime(), MTIME as i64);
    assert_eq!(lstat(&d.join("usr/bin/su-again")).ino(), su.ino(), "hard link shares the inode");
    assert_eq!(su.nlink(), 2);

    let tmp = lstat(&d.join("tmp"));
    assert_eq!(tmp.mode() & 0o7777, 0o1777);
    assert_eq!(tmp.mtime(), DIR_MTIME as i64);
    let user = lstat(&d.join("home/user"));
    assert_eq!((user.uid(), user.gid(), user.mode() & 0o7777), (1000, 1000, 0o700));
    assert_eq!(user.mtime(), DIR_MTIME as i64, "dir times are set after its children");
    let notes = lstat(&d.join("home/user/notes"));
    assert_eq!((notes.uid(), notes.gid(), notes.mode() & 0o7777), (1000, 1000, 0o600));
    assert_eq!(lstat(&d.join("usr/bin")).mtime(), DIR_MTIME as i64);

    assert_eq!(fs::read_link(d.join("usr/bin/sh")).expect("readlink"), Path::new("../../bin/busybox"));
    assert_eq!(lstat(&d.join("usr/bin/sh")).mtime(), MTIME as i64);

    let null = lstat(&d.join("dev/null"));
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert_eq!(null.mode() & 0o7777, 0o666);
    assert_eq!(lstat(&d.join("dev")).mode() & 0o7777, 0o755, "implicit parent dirs are 0755");
    assert!(lstat(&d.join("run/initctl")).file_type().is_fifo());

    assert_eq!(xattr(&d.join("etc/with-xattr"), "user.foo").as_deref(), Some(&b"bar"[..]));
    let with_xattr = lstat(&d.join("etc/with-xattr"));
    assert_eq!((with_xattr.mtime(), with_xattr.mtime_nsec()), (MTIME as i64, 500_000_000), "PAX mtime wins");
}

#[test]
fn gzip_and_zstd_layers_give_the_same_tree_and_the_diff_id_of_the_raw_tar() {
    let raw = normal_layer();
    let mut trees = Vec::new();
    for (compression, blob) in
        [(Compression::None, raw.clone()), (Compression::Gzip, gzip(&raw)), (Compression::Zstd, zstd(&raw))]
    {
        let fx = Fixture::new();
        let applied = apply_layer(&blob[..], compression, &fx.dest).expect("apply");
        assert_eq!(applied.diff_id, Digest::sha256(&raw), "{compression:?}");
        assert_eq!(applied.size, raw.len() as u64, "{compression:?}");
        // Parent directories the layer does not list get the time of the apply: the three applies
        // may straddle a second.
        let implicit_now = |line: String| {
            let mut fields: Vec<String> = line.split(' ').map(String::from).collect();
            if fields.get(3).and_then(|t| t.parse::<i64>().ok()).is_some_and(|t| t > 1_700_000_000) {
                fields[3] = "now".into();
            }
            fields.join(" ")
        };
        trees.push(tree(&fx.dest).into_iter().map(implicit_now).collect::<Vec<_>>());
    }
    assert!(!trees[0].is_empty());
    assert_eq!(trees[0], trees[1]);
    assert_eq!(trees[0], trees[2]);
}

#[test]
fn concatenated_gzip_members_are_one_stream() {
    let raw = normal_layer();
    let (head, tail) = raw.split_at(1000);
    let blob = [gzip(head), gzip(tail)].concat();
    let fx = Fixture::new();
    let applied = apply_layer(&blob[..], Compression::Gzip, &fx.dest).expect("apply");
    assert_eq!(applied.diff_id, Digest::sha256(&raw));
}

#[test]
fn whiteout_becomes_a_char_0_0_device_and_no_wh_file() {
    let fx = Fixture::new();
    let raw = Layer::new()
        .dir("etc/", 0o755)
        .entry_owned(EntryType::Regular, "etc/.wh.passwd", "", 0o644, (7, 8), b"")
        .file(".wh.toplevel", b"")
        .finish();
    fx.apply(&raw).expect("apply");
    let whiteout = lstat(&fx.dest.join("etc/passwd"));
    assert!(whiteout.file_type().is_char_device());
    assert_eq!(whiteout.rdev(), 0);
    assert_eq!((whiteout.uid(), whiteout.gid()), (7, 8));
    assert!(lstat(&fx.dest.join("toplevel")).file_type().is_char_device());
    assert_eq!(names(&fx.dest.join("etc")), ["passwd".to_string()].into());
    assert_eq!(names(&fx.dest), ["etc", "toplevel"].map(String::from).into());
}

#[test]
fn whiteout_replaces_an_entry_of_the_same_layer() {
    let fx = Fixture::new();
    let raw = Layer::new().dir("gone/", 0o755).file("gone/file", b"x").file(".wh.gone", b"").finish();
    fx.apply(&raw).expect("apply");
    assert!(lstat(&fx.dest.join("gone")).file_type().is_char_device());
}

#[test]
fn opaque_marker_sets_trusted_overlay_opaque_on_its_directory() {
    let fx = Fixture::new();
    let raw = Layer::new()
        .dir("var/", 0o755)
        .file("var/.wh..wh..opq", b"")
        .file("var/kept", b"k")
        .file("new/.wh..wh..opq", b"")
        .finish();
    fx.apply(&raw).expect("apply");
    assert_eq!(xattr(&fx.dest.join("var"), "trusted.overlay.opaque").as_deref(), Some(&b"y"[..]));
    assert_eq!(xattr(&fx.dest.join("new"), "trusted.overlay.opaque").as_deref(), Some(&b"y"[..]));
    assert_eq!(names(&fx.dest.join("var")), ["kept".to_string()].into());
    assert!(names(&fx.dest.join("new")).is_empty());
}

#[test]
fn aufs_metadata_entries_are_skipped() {
    let fx = Fixture::new();
    let raw = Layer::new()
        .dir(".wh..wh.plnk/", 0o700)
        .file(".wh..wh.plnk/1234.5678", b"x")
        .file("dir/.wh..wh.aufs", b"")
        .file("dir/real", b"r")
        .finish();
    fx.apply(&raw).expect("apply");
    assert_eq!(names(&fx.dest), ["dir".to_string()].into());
    assert_eq!(names(&fx.dest.join("dir")), ["real".to_string()].into());
}

#[test]
fn disallowed_xattrs_are_not_applied() {
    let fx = Fixture::new();
    let raw = Layer::new()
        .pax(&[
            ("SCHILY.xattr.trusted.overlay.redirect", b"/elsewhere"),
            ("SCHILY.xattr.security.selinux", b"system_u:object_r:shadow_t:s0"),
            (
                "SCHILY.xattr.security.capability",
                b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
            ),
        ])
        .entry(EntryType::Regular, "bin/ping", "", 0o755, b"elf")
        .finish();
    fx.apply(&raw).expect("apply");
    let ping = fx.dest.join("bin/ping");
    assert_eq!(xattr(&ping, "trusted.overlay.redirect"), None);
    assert_eq!(xattr(&ping, "security.selinux"), None);
    assert!(xattr(&ping, "security.capability").is_some(), "file capabilities survive chown");
}

#[test]
fn entries_replace_existing_ones_as_tar_does() {
    let fx = Fixture::new();
    let secret = fx.outside.join("secret");
    let raw = Layer::new()
        .file("f", b"first")
        .file("f", b"second")
        .dir("d/", 0o755)
        .file("d/child", b"c")
        .file("d", b"file over dir")
        .dir("keep/", 0o755)
        .file("keep/child", b"c")
        .dir("keep/", 0o700)
        .symlink("through", secret.to_str().expect("utf-8 temp path"))
        .file("through", b"owned")
        .symlink("dirlink", fx.outside.to_str().expect("utf-8 temp path"))
        .dir("dirlink/", 0o755)
        .finish();
    fx.apply(&raw).expect("apply");
    let d = &fx.dest;
    assert_eq!(fs::read(d.join("f")).expect("read f"), b"second");
    assert_eq!(fs::read(d.join("d")).expect("read d"), b"file over dir");
    assert_eq!(names(&d.join("keep")), ["child".to_string()].into(), "dir over dir merges");
    assert_eq!(lstat(&d.join("keep")).mode() & 0o7777, 0o700, "and takes the new metadata");
    assert!(lstat(&d.join("through")).is_file(), "a file replaces the symlink, never writes through it");
    assert!(lstat(&d.join("dirlink")).is_dir());
    fx.assert_outside_untouched();
}

fn assert_refused(fx: &Fixture, raw: &[u8], expected: &str) {
    let err = fx.apply(raw).expect_err("hostile layer applied");
    let message = err.to_string();
    assert!(message.contains(expected), "error {message:?} does not mention {expected:?}");
    fx.assert_outside_untouched();
}

#[test]
fn names_climbing_out_of_the_root_are_refused() {
    for name in ["../escape", "a/../../escape", "/../escape", "../outside/secret"] {
        let fx = Fixture::new();
        let raw = Layer::new().file("ok", b"").file(name, b"owned").finish();
        assert_refused(&fx, &raw, &format!("layer entry {name:?}: path escapes the layer root"));
    }
}

#[test]
fn absolute_names_land_inside_dest() {
    let fx = Fixture::new();
    let target = fx.outside.join("owned");
    let raw = Layer::new().file("/abs/path", b"a").file(target.to_str().expect("utf-8 temp path"), b"x").finish();
    fx.apply(&raw).expect("apply");
    assert_eq!(fs::read(fx.dest.join("abs/path")).expect("read"), b"a");
    let relative = target.strip_prefix("/").expect("absolute temp path");
    assert_eq!(fs::read(fx.dest.join(relative)).expect("read"), b"x");
    fx.assert_outside_untouched();
}

#[test]
fn symlink_parent_pointing_outside_cannot_be_written_through() {
    let fx = Fixture::new();
    let raw =
        Layer::new().symlink("evil", fx.outside.to_str().expect("utf-8 temp path")).file("evil/owned", b"x").finish();
    assert_refused(&fx, &raw, "layer entry \"evil/owned\"");
}

#[test]
fn symlink_parent_climbing_out_resolves_inside_dest() {
    let fx = Fixture::new();
    let raw = Layer::new().symlink("evil", "../../../..").file("evil/owned", b"x").finish();
    fx.apply(&raw).expect("apply");
    assert_eq!(fs::read(fx.dest.join("owned")).expect("read"), b"x", "`..` stops at the layer root");
    fx.assert_outside_untouched();
}

#[test]
fn symlink_parent_resolves_as_under_chroot() {
    let fx = Fixture::new();
    let raw = Layer::new()
        .dir("usr/", 0o755)
        .dir("usr/lib/", 0o755)
        .symlink("lib", "/usr/lib")
        .file("lib/libc.so", b"c")
        .finish();
    fx.apply(&raw).expect("apply");
    assert_eq!(fs::read(fx.dest.join("usr/lib/libc.so")).expect("read"), b"c");
    assert!(lstat(&fx.dest.join("lib")).file_type().is_symlink());
}

#[test]
fn hard_links_to_outside_files_are_refused() {
    let passwd_links = fs::metadata("/etc/passwd").map(|m| m.nlink()).ok();
    let fx = Fixture::new();
    let raw = Layer::new().hardlink("stolen", "../outside/secret").finish();
    assert_refused(&fx, &raw, "hard link target \"../outside/secret\": path escapes the layer root");

    let fx = Fixture::new();
    let raw = Layer::new().hardlink("passwd", "/etc/passwd").finish();
    assert_refused(&fx, &raw, "layer entry \"passwd\"");
    assert!(fs::symlink_metadata(fx.dest.join("passwd")).is_err());
    assert_eq!(fs::metadata("/etc/passwd").map(|m| m.nlink()).ok(), passwd_links);
}

#[test]
fn hard_links_through_escaping_symlinks_are_refused() {
    for target in [None, Some("../outside"), Some("../../..")] {
        let fx = Fixture::new();
        let symlink_target = target.map_or_else(|| fx.outside.display().to_string(), String::from);
        let raw = Layer::new().symlink("evil", &symlink_target).hardlink("stolen", "evil/secret").finish();
        assert_refused(&fx, &raw, "layer entry \"stolen\"");
    }
}

#[test]
fn hard_link_to_a_symlink_links_the_symlink_itself() {
    let fx = Fixture::new();
    let secret = fx.outside.join("secret");
    let raw =
        Layer::new().symlink("link", secret.to_str().expect("utf-8 temp path")).hardlink("again", "link").finish();
    fx.apply(&raw).expect("apply");
    assert!(lstat(&fx.dest.join("again")).file_type().is_symlink());
    assert_eq!(lstat(&fx.dest.join("again")).ino(), lstat(&fx.dest.join("link")).ino());
    fx.assert_outside_untouched();
}

#[test]
fn whiteouts_naming_parents_or_outside_are_refused() {
    for (name, expected) in [
        ("../.wh.secret", "path escapes the layer root"),
        ("../outside/.wh.secret", "path escapes the layer root"),
        (".wh...", "whiteout names no file"),
        ("a/.wh..", "whiteout names no file"),
        (".wh.", "whiteout names no file"),
    ] {
        let fx = Fixture::new();
        let raw = Layer::new().file(name, b"").finish();
        assert_refused(&fx, &raw, expected);
    }
}

#[test]
fn whiteout_under_an_escaping_symlink_stays_inside() {
    let fx = Fixture::new();
    let raw = Layer::new().symlink("evil", "../outside").file("evil/.wh.secret", b"").finish();
    // `evil` resolves to dest/outside, which does not exist: refused, and the secret stays.
    assert_refused(&fx, &raw, "layer entry \"evil/.wh.secret\"");
}

#[test]
fn truncated_or_corrupt_streams_are_errors() {
    let raw = normal_layer();
    let gz = gzip(&raw);
    let zst = zstd(&raw);
    let mut flipped = gz.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0xff;
    let cut_in_header = 512 * 4 + 100;
    let big = Layer::new().file("big", &[7u8; 5000]).finish();
    for (what, compression, blob) in [
        ("truncated gzip", Compression::Gzip, gz[..gz.len() / 2].to_vec()),
        ("gzip without its trailer", Compression::Gzip, gz[..gz.len() - 4].to_vec()),
        ("corrupt gzip", Compression::Gzip, flipped),
        ("truncated zstd", Compression::Zstd, zst[..zst.len() / 2].to_vec()),
        ("tar cut inside a header", Compression::None, raw[..cut_in_header].to_vec()),
        ("tar cut inside file data", Compression::None, big[..512 + 2000].to_vec()),
        ("not gzip at all", Compression::Gzip, raw.clone()),
    ] {
        let fx = Fixture::new();
        assert!(apply_layer(&blob[..], compression, &fx.dest).is_err(), "{what} applied");
    }
}

#[test]
fn bad_tar_checksum_is_an_error() {
    let mut raw = Layer::new().file("a", b"x").finish();
    raw[0] = b'b';
    let fx = Fixture::new();
    assert!(matches!(fx.apply(&raw), Err(ArchiveError::Stream(_))));
}

#[test]
fn media_types_map_to_compression_and_unknown_ones_are_named() {
    for (media_type, expected) in [
        ("application/vnd.oci.image.layer.v1.tar", Compression::None),
        ("application/vnd.oci.image.layer.v1.tar+gzip", Compression::Gzip),
        ("application/vnd.oci.image.layer.v1.tar+zstd", Compression::Zstd),
        ("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", Compression::Gzip),
        ("application/vnd.docker.image.rootfs.diff.tar.gzip", Compression::Gzip),
        ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", Compression::Gzip),
    ] {
        assert_eq!(Compression::from_media_type(media_type).expect(media_type), expected);
    }
    let err = Compression::from_media_type("application/vnd.oci.image.layer.v1.tar+bzip2").expect_err("bzip2");
    assert!(err.to_string().contains("\"application/vnd.oci.image.layer.v1.tar+bzip2\""), "{err}");
}

#[test]
fn pax_time_parses_fractions_and_negative_times() {
    assert_eq!(pax_time(b"1600000000.5"), Some(TimeSpec::new(1_600_000_000, 500_000_000)));
    assert_eq!(pax_time(b"12"), Some(TimeSpec::new(12, 0)));
    assert_eq!(pax_time(b"-1.25"), Some(TimeSpec::new(-2, 750_000_000)));
    assert_eq!(pax_time(b"1.0000000019"), Some(TimeSpec::new(1, 1)));
    assert_eq!(pax_time(b"1.x"), None);
    assert_eq!(pax_time(b""), None);
}

/// A NUL-terminated octal tar number field.
fn octal<const N: usize>(value: u64) -> [u8; N] {
    let text = format!("{value:0width$o}\0", width = N - 1);
    text.as_bytes().try_into().expect("octal value fits its field")
}

#[test]
fn gnu_sparse_entries_are_refused_before_anything_is_written() {
    // One 512-byte data block at the end of a 512 MiB hole: the tar crate would write it all out.
    let real_size = 512 << 20;
    let mut header = Header::new_gnu();
    header.set_path("sparse").expect("sparse name");
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(MTIME);
    header.set_size(512);
    let gnu = header.as_gnu_mut().expect("GNU header");
    gnu.typeflag = [b'S'];
    gnu.sparse[0].offset = octal(real_size - 512);
    gnu.sparse[0].numbytes = octal(512);
    gnu.realsize = octal(real_size);
    header.set_cksum();
    let mut layer = Layer::new();
    layer.builder.append(&header, &[7u8; 512][..]).expect("append to an in-memory tar");
    let raw = layer.finish();

    let fx = Fixture::new();
    assert_refused(&fx, &raw, "layer entry \"sparse\": sparse files are not supported");
    assert!(names(&fx.dest).is_empty(), "sparse entry left {:?}", names(&fx.dest));
}

#[test]
fn pax_sparse_entries_are_refused_before_anything_is_written() {
    for records in [
        // Format 1.0: the map sits at the start of the data, the name is a stand-in.
        &[("GNU.sparse.major", &b"1"[..]), ("GNU.sparse.minor", b"0"), ("GNU.sparse.realsize", b"536870912")][..],
        // Format 0.0: the map is in the PAX records.
        &[("GNU.sparse.size", &b"536870912"[..]), ("GNU.sparse.numblocks", b"1")][..],
    ] {
        let raw = Layer::new().pax(records).file("dir/sparse", b"1\n0\n1\n").finish();
        let fx = Fixture::new();
        assert_refused(&fx, &raw, "layer entry \"dir/sparse\": sparse files are not supported");
        assert!(names(&fx.dest).is_empty(), "sparse entry left {:?}", names(&fx.dest));
    }
}

#[test]
fn layers_with_too_many_entries_are_refused() {
    let raw = Layer::new().dir("a/", 0o755).file("a/b", b"").file("c", b"").finish();
    let fx = Fixture::new();
    apply_layer_limited(&raw[..], Compression::None, &fx.dest, 3).expect("three entries within a limit of three");
    let fx = Fixture::new();
    let err = apply_layer_limited(&raw[..], Compression::None, &fx.dest, 2).expect_err("three entries over two");
    assert!(matches!(err, ArchiveError::TooManyEntries { limit: 2 }), "{err}");
    assert_eq!(err.to_string(), "layer has more than 2 entries");
}
