use super::*;

use std::os::unix::fs::{symlink, PermissionsExt};

fn ignore(text: &str) -> Dockerignore {
    Dockerignore::parse(text).expect("valid patterns")
}

fn excluded(ig: &Dockerignore, path: &str) -> bool {
    ig.excludes(path, false)
}

/// docker's documented `.dockerignore` example.
#[test]
fn documented_temp_patterns() {
    let ig = ignore("# comment\n*/temp*\n*/*/temp*\ntemp?\n");
    assert!(excluded(&ig, "somedir/temporary.txt"));
    assert!(excluded(&ig, "somedir/temp"));
    assert!(excluded(&ig, "somedir/subdir/temporary.txt"));
    assert!(excluded(&ig, "tempa"));
    assert!(excluded(&ig, "tempb"));
    assert!(!excluded(&ig, "temp"));
    assert!(!excluded(&ig, "temporary.txt"), "*/temp* needs a directory");
    assert!(!excluded(&ig, "a/b/c/temp.txt"), "*/*/temp* is two directories deep only");
    assert!(!excluded(&ig, "# comment"));
}

#[test]
fn double_star_matches_any_number_of_directories() {
    let ig = ignore("**/*.go");
    assert!(excluded(&ig, "main.go"));
    assert!(excluded(&ig, "a/b/c/main.go"));
    assert!(!excluded(&ig, "main.rs"));
    let all_below = ignore("vendor/**");
    assert!(excluded(&all_below, "vendor/a/b"));
    assert!(excluded(&all_below, "vendor/"), "a trailing ** matches even nothing");
    assert!(!excluded(&all_below, "vendored"));
    let middle = ignore("a/**/z");
    assert!(excluded(&middle, "a/z"));
    assert!(excluded(&middle, "a/b/c/z"));
    assert!(!excluded(&middle, "a/bz"));
    assert!(excluded(&ignore("**"), "anything/at/all"));
}

/// docker's documented exception examples.
#[test]
fn exceptions_reinclude_and_the_last_match_wins() {
    let ig = ignore("*.md\n!README.md");
    assert!(excluded(&ig, "CHANGES.md"));
    assert!(!excluded(&ig, "README.md"));
    let ig = ignore("*.md\n!README*.md\nREADME-secret.md");
    assert!(excluded(&ig, "README-secret.md"));
    assert!(!excluded(&ig, "README-public.md"));
    let ig = ignore("*.md\nREADME-secret.md\n!README*.md");
    assert!(!excluded(&ig, "README-secret.md"));
}

#[test]
fn a_directory_pattern_excludes_everything_below_it() {
    let ig = ignore("build\nnode_modules/");
    assert!(excluded(&ig, "build"));
    assert!(excluded(&ig, "build/a/b.o"));
    assert!(excluded(&ig, "node_modules/x/index.js"));
    assert!(!excluded(&ig, "src/build"), "patterns are anchored at the context root");
    let nested = ignore("a/b");
    assert!(excluded(&nested, "a/b/c/d"));
    assert!(!excluded(&nested, "a/bc"));
}

#[test]
fn exceptions_inside_an_excluded_directory() {
    let ig = ignore("docs\n!docs/keep.txt");
    assert!(excluded(&ig, "docs"));
    assert!(excluded(&ig, "docs/other.txt"));
    assert!(!excluded(&ig, "docs/keep.txt"));
    assert!(ig.may_include_below("docs"));
    assert!(!ignore("docs\n!**/keep.txt").may_include_below("docs"));
}

#[test]
fn leading_slash_and_dot_slash_are_dropped_and_paths_cleaned() {
    let ig = ignore("/foo\n./bar\nbaz/../qux\n  spaced  \n!  /foo/keep");
    assert!(excluded(&ig, "foo"));
    assert!(excluded(&ig, "bar"));
    assert!(excluded(&ig, "qux"));
    assert!(excluded(&ig, "spaced"));
    assert!(!excluded(&ig, "foo/keep"));
    assert!(excluded(&ig, "foo/other"));
}

#[test]
fn only_lines_starting_with_hash_are_comments() {
    let ig = ignore("#x\n  #y\n\n   \n");
    assert!(!excluded(&ig, "#x"));
    assert!(excluded(&ig, "#y"), "a # after spaces starts a pattern");
}

#[test]
fn wildcards_classes_and_escapes_follow_filepath_match() {
    let ig = ignore("file?.txt\n[a-c]*.log\nx[^0-9]\nlit\\*star\n");
    assert!(excluded(&ig, "file1.txt"));
    assert!(!excluded(&ig, "file10.txt"));
    assert!(!excluded(&ig, "dir/file1.txt"));
    assert!(excluded(&ig, "b-1.log"));
    assert!(!excluded(&ig, "d.log"));
    assert!(excluded(&ig, "xa"));
    assert!(!excluded(&ig, "x1"));
    assert!(excluded(&ig, "lit*star"));
    assert!(!excluded(&ig, "litXstar"));
    assert!(excluded(&ignore("*"), "top"));
    assert!(!excluded(&ignore("a*b"), "a/b"), "* does not cross /");
    assert!(!excluded(&ignore("a?b"), "a/b"), "? does not match /");
    assert!(excluded(&ignore("a.b"), "a.b"));
    assert!(!excluded(&ignore("a.b"), "axb"), ". is literal");
}

#[test]
fn malformed_patterns_are_refused() {
    assert!(Dockerignore::parse("[abc").is_err());
    assert!(Dockerignore::parse("a[]").is_err());
    assert!(Dockerignore::parse("trailing\\").is_err());
    assert_eq!(Dockerignore::parse("!").unwrap_err().to_string(), "illegal exclusion pattern: \"!\"");
}

#[test]
fn clean_path_is_go_filepath_clean() {
    for (input, cleaned) in [
        ("", "."),
        ("./a", "a"),
        ("a//b/", "a/b"),
        ("a/./b/../c", "a/c"),
        ("../a", "../a"),
        ("/../a", "/a"),
        ("a/..", "."),
        ("/", "/"),
    ] {
        assert_eq!(clean_path(input), cleaned, "{input}");
    }
}

/// One entry of a tar as the tests look at it.
#[derive(Debug, PartialEq)]
struct Entry {
    path: String,
    kind: tar::EntryType,
    link: Option<String>,
    mode: u32,
    uid: u64,
    content: Vec<u8>,
}

fn entries(tar_bytes: &[u8]) -> Vec<Entry> {
    let mut archive = tar::Archive::new(tar_bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut content = Vec::new();
            e.read_to_end(&mut content).unwrap();
            let header = e.header();
            Entry {
                path: String::from_utf8(e.path_bytes().to_vec()).unwrap(),
                kind: header.entry_type(),
                link: e.link_name().unwrap().map(|l| l.to_string_lossy().into_owned()),
                mode: header.mode().unwrap(),
                uid: header.uid().unwrap(),
                content,
            }
        })
        .collect()
}

fn paths(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|e| e.path.as_str()).collect()
}

fn write(dir: &Path, rel: &str, content: &str) {
    let path = dir.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

/// The whole context as a tar (what `berth build` sends without a context kept by berthd).
fn write_context_tar(dir: &Path, dockerfile: Option<&Path>, out: impl Write) -> anyhow::Result<String> {
    let context = DirContext::collect(dir, dockerfile)?;
    context.write_tar(|_| true, out)?;
    Ok(context.dockerfile)
}

fn context_tar(dir: &Path, dockerfile: Option<&Path>) -> (String, Vec<Entry>) {
    let mut out = Vec::new();
    let name = write_context_tar(dir, dockerfile, &mut out).expect("context written");
    (name, entries(&out))
}

#[test]
fn the_context_is_walked_in_name_order_with_relative_paths() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "Dockerfile", "FROM scratch\n");
    write(dir.path(), "b/z.txt", "z");
    write(dir.path(), "b/a.txt", "a");
    write(dir.path(), "a.txt", "top");
    fs::set_permissions(dir.path().join("a.txt"), fs::Permissions::from_mode(0o751)).unwrap();
    let (name, entries) = context_tar(dir.path(), None);
    assert_eq!(name, "Dockerfile");
    assert_eq!(paths(&entries), ["Dockerfile", "a.txt", "b/", "b/a.txt", "b/z.txt"]);
    let a = &entries[1];
    assert_eq!(
        (a.kind, a.mode & 0o7777, a.uid, a.content.as_slice()),
        (tar::EntryType::Regular, 0o751, 0, &b"top"[..])
    );
    assert_eq!(entries[2].kind, tar::EntryType::Directory);
    let mtime = fs::metadata(dir.path().join("a.txt")).unwrap().mtime();
    let mut archive_bytes = Vec::new();
    write_context_tar(dir.path(), None, &mut archive_bytes).unwrap();
    let mut archive = tar::Archive::new(archive_bytes.as_slice());
    let first_file = archive.entries().unwrap().nth(1).unwrap().unwrap();
    assert_eq!(first_file.header().mtime().unwrap(), mtime as u64);
}

#[test]
fn dockerignore_excludes_and_exceptions_shape_the_context() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "Dockerfile", "FROM scratch\n");
    write(dir.path(), ".dockerignore", "*.md\n!README.md\ndocs\n!docs/keep.txt\n**/*.o\n");
    write(dir.path(), "README.md", "r");
    write(dir.path(), "CHANGES.md", "c");
    write(dir.path(), "docs/keep.txt", "k");
    write(dir.path(), "docs/drop.txt", "d");
    write(dir.path(), "src/main.c", "m");
    write(dir.path(), "src/deep/main.o", "o");
    let (_, entries) = context_tar(dir.path(), None);
    assert_eq!(
        paths(&entries),
        [".dockerignore", "Dockerfile", "README.md", "docs/keep.txt", "src/", "src/deep/", "src/main.c"]
    );
}

#[test]
fn excluded_directories_without_exceptions_are_not_entered() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "Dockerfile", "FROM scratch\n");
    write(dir.path(), ".dockerignore", "secret\n");
    write(dir.path(), "secret/key", "k");
    let locked = dir.path().join("secret");
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    let result = context_tar(dir.path(), None);
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(paths(&result.1), [".dockerignore", "Dockerfile"]);
}

#[test]
fn the_dockerfile_and_dockerignore_are_always_sent() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "Dockerfile", "FROM scratch\n");
    write(dir.path(), ".dockerignore", "*\n");
    write(dir.path(), "other", "o");
    let (name, entries) = context_tar(dir.path(), None);
    assert_eq!(name, "Dockerfile");
    assert_eq!(paths(&entries), [".dockerignore", "Dockerfile"]);
}

#[test]
fn a_dockerfile_in_an_excluded_directory_is_still_sent() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "build/Dockerfile.dev", "FROM scratch\n");
    write(dir.path(), "build/other", "o");
    write(dir.path(), ".dockerignore", "build\n");
    let (name, entries) = context_tar(dir.path(), Some(&dir.path().join("build/Dockerfile.dev")));
    assert_eq!(name, "build/Dockerfile.dev");
    assert_eq!(paths(&entries), [".dockerignore", "build/Dockerfile.dev"]);
}

#[test]
fn a_lowercase_dockerfile_is_the_fallback() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "dockerfile", "FROM scratch\n");
    let (name, _) = context_tar(dir.path(), None);
    assert_eq!(name, "dockerfile");
}

#[test]
fn a_missing_dockerfile_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = write_context_tar(dir.path(), None, Vec::new()).unwrap_err().to_string();
    assert!(err.starts_with("unable to prepare context: unable to evaluate symlinks in Dockerfile path"), "{err}");
    let err = write_context_tar(&dir.path().join("nope"), None, Vec::new()).unwrap_err().to_string();
    assert!(err.starts_with("unable to prepare context: path"), "{err}");
}

#[test]
fn a_dockerfile_outside_the_context_gets_a_generated_name() {
    let dir = tempfile::tempdir().unwrap();
    let context = dir.path().join("ctx");
    write(&context, "app.txt", "a");
    write(dir.path(), "outside/Dockerfile", "FROM busybox\n");
    let (name, entries) = context_tar(&context, Some(&dir.path().join("outside/Dockerfile")));
    let hex = name.strip_prefix(".dockerfile.").expect("generated name");
    assert_eq!(hex.len(), 20);
    assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(paths(&entries), ["app.txt", name.as_str(), ".dockerignore"]);
    assert_eq!(entries[1].content, b"FROM busybox\n");
    assert_eq!((entries[1].mode, entries[1].uid), (0o600, 0));
    assert_eq!(entries[2].content, format!(".dockerignore\n{name}\n").as_bytes());
}

#[test]
fn an_outside_dockerfile_is_named_in_the_existing_dockerignore() {
    let dir = tempfile::tempdir().unwrap();
    let context = dir.path().join("ctx");
    write(&context, ".dockerignore", "*.log");
    write(dir.path(), "Dockerfile", "FROM busybox\n");
    let (name, entries) = context_tar(&context, Some(&dir.path().join("Dockerfile")));
    assert_eq!(paths(&entries), [".dockerignore", name.as_str()]);
    assert_eq!(entries[0].content, format!("*.log\n{name}\n").as_bytes());
}

#[test]
fn symlinks_are_sent_as_links_and_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "secret", "s");
    write(dir.path(), "Dockerfile", "FROM scratch\n");
    symlink(outside.path(), dir.path().join("linkdir")).unwrap();
    symlink("Dockerfile", dir.path().join("linkfile")).unwrap();
    symlink("/does/not/exist", dir.path().join("dangling")).unwrap();
    let (_, entries) = context_tar(dir.path(), None);
    assert_eq!(paths(&entries), ["Dockerfile", "dangling", "linkdir", "linkfile"]);
    for entry in &entries[1..] {
        assert_eq!(entry.kind, tar::EntryType::Symlink, "{}", entry.path);
    }
    assert_eq!(entries[1].link.as_deref(), Some("/does/not/exist"));
    assert_eq!(entries[2].link.as_deref(), Some(outside.path().to_str().unwrap()));
    assert_eq!(entries[3].link.as_deref(), Some("Dockerfile"));
}

#[test]
fn hard_links_are_sent_once_then_as_links() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "Dockerfile", "FROM scratch\n");
    write(dir.path(), "a", "data");
    fs::hard_link(dir.path().join("a"), dir.path().join("b")).unwrap();
    fs::hard_link(dir.path().join("a"), dir.path().join("c")).unwrap();
    let (_, entries) = context_tar(dir.path(), None);
    assert_eq!(paths(&entries), ["Dockerfile", "a", "b", "c"]);
    assert_eq!((entries[1].kind, entries[1].content.as_slice()), (tar::EntryType::Regular, &b"data"[..]));
    for entry in &entries[2..] {
        assert_eq!((entry.kind, entry.link.as_deref()), (tar::EntryType::Link, Some("a")));
    }
}

#[test]
fn fifos_are_sent_and_sockets_left_out() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "Dockerfile", "FROM scratch\n");
    nix::unistd::mkfifo(&dir.path().join("pipe"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(dir.path().join("sock")).unwrap();
    let (_, entries) = context_tar(dir.path(), None);
    assert_eq!(paths(&entries), ["Dockerfile", "pipe"]);
    assert_eq!(entries[1].kind, tar::EntryType::Fifo);
}

#[test]
fn unreadable_files_are_an_error_naming_them() {
    if nix::unistd::geteuid().is_root() {
        return; // root reads everything
    }
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "Dockerfile", "FROM scratch\n");
    write(dir.path(), "locked", "x");
    let locked = dir.path().join("locked");
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    let err = write_context_tar(dir.path(), None, Vec::new()).unwrap_err().to_string();
    assert_eq!(err, format!("error checking context: 'no permission to read from '{}''.", locked.display()));
}

#[test]
fn stdin_tar_is_sent_as_it_is() {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(3);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append_data(&mut header, "Dockerfile", &b"abc"[..]).unwrap();
    let tar_bytes = builder.into_inner().unwrap();
    let (bytes, name) = stdin_context(tar_bytes.clone()).unwrap();
    assert_eq!((bytes, name.as_str()), (tar_bytes, "Dockerfile"));
}

#[test]
fn stdin_compressed_archives_are_sent_for_the_daemon_to_decompress() {
    for magic in [&[0x1f, 0x8b, 0x08, 0, 0][..], b"BZh91AY", &[0xfd, b'7', b'z', b'X', b'Z', 0, 1]] {
        let (bytes, name) = stdin_context(magic.to_vec()).unwrap();
        assert_eq!((bytes.as_slice(), name.as_str()), (magic, "Dockerfile"));
    }
}

#[test]
fn stdin_dockerfile_text_becomes_a_one_file_tar() {
    for text in ["FROM busybox\nRUN echo hi\n", "", "x"] {
        let (bytes, name) = stdin_context(text.as_bytes().to_vec()).unwrap();
        assert_eq!(name, "Dockerfile");
        let entries = entries(&bytes);
        assert_eq!(paths(&entries), ["Dockerfile"]);
        assert_eq!((entries[0].kind, entries[0].content.as_slice()), (tar::EntryType::Regular, text.as_bytes()));
        assert_eq!(entries[0].mode & 0o7777, 0o644);
    }
}

#[test]
fn a_512_byte_text_is_no_tar() {
    let text = "FROM busybox\n".repeat(60);
    assert!(!is_archive(text.as_bytes()));
    assert!(!is_archive(&[0u8; 1024]));
}

#[test]
fn unreadable_directories_are_an_error_naming_them() {
    if nix::unistd::geteuid().is_root() {
        return; // root reads everything
    }
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "Dockerfile", "FROM scratch\n");
    write(dir.path(), "locked/file", "x");
    let locked = dir.path().join("locked");
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    let err = write_context_tar(dir.path(), None, Vec::new()).unwrap_err().to_string();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(err, format!("error checking context: 'can't stat '{}''.", locked.display()));
}
