//! `berth build` through a private berthd, each Dockerfile and context built by a private
//! dockerd 20.10's classic builder too: the images' filesystems (paths, types, modes, owners,
//! link targets, contents) and configs must be the same, and what the build prints and refuses
//! must read alike. Also the cache (hits, misses, `--no-cache`, a berthd restart), failures that
//! leave nothing behind, hostile contexts, and the built image in docker after `save`/`load`.
//! Run as root.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use berth_integration::engines::berthd::Berthd;
use berth_integration::engines::docker::Dockerd;
use berth_integration::engines::image::BusyboxImage;
use berth_integration::engines::process::{run, run_ok, Outcome};
use berth_integration::engines::scratch::Scratch;

fn busybox() -> &'static BusyboxImage {
    static IMAGE: OnceLock<BusyboxImage> = OnceLock::new();
    IMAGE.get_or_init(|| BusyboxImage::build(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("berth-build-image")))
}

fn daemon() -> Berthd {
    let b = Berthd::start_with(&["--bridge", "none"]);
    b.ok(&["load", "-q", "-i", busybox().docker_archive().to_str().expect("utf-8 path")]);
    b
}

/// A private dockerd with the busybox image, building with its classic builder.
struct Docker {
    dockerd: Dockerd,
    _scratch: Scratch,
}

impl Docker {
    fn start(label: &str) -> Docker {
        let scratch = Scratch::new(label);
        let dockerd = Dockerd::start(&scratch.path().join("docker"), scratch.cgroup_parent(), &[]);
        dockerd.load(&busybox().docker_archive());
        Docker { dockerd, _scratch: scratch }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.dockerd.docker();
        c.env("DOCKER_BUILDKIT", "0").args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Outcome {
        run(&mut self.cmd(args))
    }

    fn ok(&self, args: &[&str]) -> String {
        run_ok(&mut self.cmd(args))
    }
}

/// Writes `files` (path → content) under a new context directory.
fn context(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    for (path, content) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, content).expect("write");
    }
    dir.to_path_buf()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// What a user can see of an image's filesystem, from inside a container of it: every path
/// with its type, mode, owner, size, link target, and a checksum of each regular file. The
/// engines' own mount points are left out.
const LIST_FS: &str = "find / \\( -path /proc -o -path /sys -o -path /dev -o -path /etc/hosts -o -path /etc/hostname \
     -o -path /etc/resolv.conf -o -path /.dockerenv -o -path /etc/mtab \\) -prune -o -print | sort | \
     while read -r p; do stat -c '%n|%F|%a|%u:%g|%s|%N' \"$p\"; \
     if [ -f \"$p\" ] && [ ! -L \"$p\" ]; then md5sum \"$p\" | cut -d' ' -f1; fi; done";

fn filesystem_berth(b: &Berthd, image: &str) -> String {
    b.ok(&["run", "--rm", "--network", "none", "-u", "0:0", "--entrypoint", "/bin/sh", image, "-c", LIST_FS])
}

fn filesystem_docker(d: &Docker, image: &str) -> String {
    d.ok(&["run", "--rm", "--network", "none", "-u", "0:0", "--entrypoint", "/bin/sh", image, "-c", LIST_FS])
}

/// The config fields docker users rely on.
const CONFIG_FIELDS: &[&str] = &[
    ".Config.Env",
    ".Config.Cmd",
    ".Config.Entrypoint",
    ".Config.WorkingDir",
    ".Config.User",
    ".Config.ExposedPorts",
    ".Config.Volumes",
    ".Config.Labels",
    ".Config.StopSignal",
    ".Config.Healthcheck",
    ".Config.OnBuild",
];

/// The config fields, compared as JSON values (docker prints an object's keys in its struct's
/// order, berth sorted).
fn assert_same_config(b: &Berthd, d: &Docker, image: &str) {
    for field in CONFIG_FIELDS {
        let format = format!("{{{{json {field}}}}}");
        let args = ["image", "inspect", "-f", &format, image];
        let parse = |text: String| serde_json::from_str::<serde_json::Value>(&text).expect("JSON");
        assert_eq!(parse(b.ok(&args)), parse(d.ok(&args)), "{image}: {field} (berth left, docker right)");
    }
}

fn assert_same_image(b: &Berthd, d: &Docker, image: &str) {
    assert_same_config(b, d, image);
    let (ours, theirs) = (filesystem_berth(b, image), filesystem_docker(d, image));
    let diff: Vec<String> = diff_lines(&ours, &theirs);
    assert!(diff.is_empty(), "{image}: filesystems differ (- berth, + docker):\n{}", diff.join("\n"));
}

fn diff_lines(a: &str, b: &str) -> Vec<String> {
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let mut out: Vec<String> = la.iter().filter(|l| !lb.contains(l)).map(|l| format!("- {l}")).collect();
    out.extend(lb.iter().filter(|l| !la.contains(l)).map(|l| format!("+ {l}")));
    out
}

/// A gzipped tar holding `inner/file` (for ADD).
fn write_archive(dir: &Path) {
    let src = dir.join("archive-src");
    std::fs::create_dir_all(src.join("inner")).expect("mkdir");
    std::fs::write(src.join("inner/file"), "from the archive\n").expect("write");
    run_ok(Command::new("tar").args([
        "-czf",
        s(&dir.join("archive.tar.gz")),
        "--owner=7",
        "--group=8",
        "-C",
        s(&src),
        "inner",
    ]));
    std::fs::remove_dir_all(&src).expect("rm");
}

const EVERY_INSTRUCTION: &str = r#"# escape=\
ARG BASE=localhost/busybox:latest
FROM ${BASE} AS base
ARG GREETING=hello
ENV APP=/app SPACED="a b"
LABEL org.example.k="v" other=two
WORKDIR $APP
COPY files/ ./files/
COPY one.txt two.txt ./
COPY --chown=1:1 owned.txt /owned/
ADD archive.tar.gz /unpacked/
ADD one.txt /added-one
COPY one.txt /usr/bin/
RUN echo "$GREETING $SPACED" > greeting && mkdir -p /data/sub && echo x > /data/sub/x && \
    rm /etc/group && chmod 700 /data
RUN ["sh", "-c", "echo exec form > /exec"]
USER 1:1
EXPOSE 80 53/udp
VOLUME ["/vol"]
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=5s --timeout=3s --retries=2 CMD true
SHELL ["/bin/sh", "-c"]
ONBUILD RUN echo onbuild
MAINTAINER someone
ENTRYPOINT ["/bin/sh"]
CMD ["-c", "cat greeting"]
"#;

#[test]
fn a_dockerfile_with_every_instruction_builds_the_image_docker_builds() {
    let b = daemon();
    let d = Docker::start("build-every");
    let dir = context(
        &b.dir().join("ctx-every"),
        &[
            ("Dockerfile", EVERY_INSTRUCTION),
            ("files/a", "a\n"),
            ("files/sub/b", "b\n"),
            ("one.txt", "one\n"),
            ("two.txt", "two\n"),
            ("owned.txt", "owned\n"),
        ],
    );
    run_ok(Command::new("chmod").args(["0640", s(&dir.join("two.txt"))]));
    std::os::unix::fs::symlink("a", dir.join("files/link-to-a")).expect("symlink");
    write_archive(&dir);
    let build = ["build", "-t", "localhost/every:1", "--build-arg", "GREETING=hi", s(&dir)];
    let out = b.ok(&build);
    assert!(out.contains("Step 1/24 : ARG BASE=localhost/busybox:latest") || out.contains("Step 1/"), "{out}");
    assert!(out.contains("Successfully tagged localhost/every:1"), "{out}");
    d.ok(&build);
    assert_same_image(&b, &d, "localhost/every:1");
    assert_eq!(b.ok(&["run", "--rm", "--network", "none", "localhost/every:1"]), "hi a b\n");
    assert_eq!(b.ok(&["image", "inspect", "-f", "{{.Author}}", "localhost/every:1"]).trim(), "someone");

    // The image moves to docker and runs there the same.
    let archive = b.dir().join("every.tar");
    b.ok(&["save", "-o", s(&archive), "localhost/every:1"]);
    d.ok(&["rmi", "localhost/every:1"]);
    d.ok(&["load", "-i", s(&archive)]);
    assert_eq!(d.ok(&["run", "--rm", "--network", "none", "localhost/every:1"]), "hi a b\n");
}

const MULTI_STAGE: &str = "FROM localhost/busybox:latest AS builder
RUN mkdir /out && echo built > /out/artifact && ln -s artifact /out/link
FROM scratch AS final
COPY --from=builder /out/ /
COPY --from=localhost/busybox:latest /bin/busybox /bin/
COPY --from=0 /etc/passwd /etc/
FROM localhost/busybox:latest AS other
RUN echo other > /o
";

#[test]
fn multi_stage_builds_stop_at_the_target_and_copy_between_stages() {
    let b = daemon();
    let d = Docker::start("build-multi");
    let dir = context(&b.dir().join("ctx-multi"), &[("Dockerfile", MULTI_STAGE)]);
    let build = ["build", "-q", "--target", "final", "-t", "localhost/multi:1", s(&dir)];
    let id = b.ok(&build);
    assert!(id.trim().starts_with("sha256:") && id.lines().count() == 1, "-q prints only the id: {id:?}");
    d.ok(&build);
    let probe = ["run", "--rm", "--network", "none", "localhost/multi:1", "/bin/busybox", "cat", "/artifact"];
    assert_eq!(b.ok(&probe), "built\n");
    assert_eq!(b.ok(&probe), d.ok(&probe));
    let ours = b.ok(&["run", "--rm", "--network", "none", "localhost/multi:1", "/bin/busybox", "readlink", "/link"]);
    assert_eq!(ours, "artifact\n");
    // The stage after the target was not built.
    assert_ne!(
        b.berth(&["run", "--rm", "--network", "none", "localhost/multi:1", "/bin/busybox", "test", "-e", "/o"]).code,
        0
    );
    assert_same_config(&b, &d, "localhost/multi:1");
    let missing = ["build", "--target", "nosuch", s(&dir)];
    let (ours, theirs) = (b.berth(&missing), d.run(&missing));
    assert_eq!((ours.code, ours.stderr.trim()), (theirs.code, theirs.stderr.trim()));
}

#[test]
fn dockerignore_keeps_files_out_of_the_context_as_docker_does() {
    let b = daemon();
    let d = Docker::start("build-ignore");
    let dir = context(
        &b.dir().join("ctx-ignore"),
        &[
            ("Dockerfile", "FROM localhost/busybox:latest\nCOPY . /ctx/\n"),
            (".dockerignore", "*.md\n!README.md\nsecret/\n**/*.tmp\n"),
            ("README.md", "readme\n"),
            ("NOTES.md", "notes\n"),
            ("secret/key", "k\n"),
            ("src/main.c", "int main;\n"),
            ("src/deep/x.tmp", "tmp\n"),
            ("src/deep/y.c", "y\n"),
        ],
    );
    let build = ["build", "-t", "localhost/ignore:1", s(&dir)];
    b.ok(&build);
    d.ok(&build);
    assert_same_image(&b, &d, "localhost/ignore:1");
    let list = b.ok(&["run", "--rm", "--network", "none", "localhost/ignore:1", "find", "/ctx", "-type", "f"]);
    let mut files: Vec<&str> = list.lines().collect();
    files.sort();
    assert_eq!(
        files,
        ["/ctx/.dockerignore", "/ctx/Dockerfile", "/ctx/README.md", "/ctx/src/deep/y.c", "/ctx/src/main.c"]
    );
}

/// How many steps of a build's output came from the cache.
fn cached_steps(out: &str) -> usize {
    out.lines().filter(|l| l.trim() == "---> CACHED").count()
}

#[test]
fn the_cache_reuses_steps_until_an_input_changes_and_survives_a_restart() {
    let mut b = daemon();
    let dir = context(
        &b.dir().join("ctx-cache"),
        &[
            ("Dockerfile", "FROM localhost/busybox:latest\nENV A=1\nRUN echo first > /first\nCOPY data /data\nRUN cat /data > /copy\nCMD [\"cat\", \"/copy\"]\n"),
            ("data", "v1\n"),
        ],
    );
    let build = ["build", "-t", "localhost/cache:1", s(&dir)];
    let first = b.ok(&build);
    assert_eq!(cached_steps(&first), 0, "{first}");
    let second = b.ok(&build);
    assert_eq!(cached_steps(&second), 5, "{second}");
    let id = |b: &Berthd| b.ok(&["image", "inspect", "-f", "{{.Id}}", "localhost/cache:1"]);
    let before = id(&b);
    b.restart();
    let third = b.ok(&build);
    assert_eq!(cached_steps(&third), 5, "the cache survives a restart: {third}");
    assert_eq!(id(&b), before, "a fully cached build is the same image");
    // A changed file: the steps before its COPY come from the cache, the rest run again.
    std::fs::write(dir.join("data"), "v2\n").expect("write");
    let fourth = b.ok(&build);
    assert_eq!(cached_steps(&fourth), 2, "{fourth}");
    assert_eq!(b.ok(&["run", "--rm", "--network", "none", "localhost/cache:1"]), "v2\n");
    let fifth = b.ok(&["build", "--no-cache", "-t", "localhost/cache:1", s(&dir)]);
    assert_eq!(cached_steps(&fifth), 0, "{fifth}");
    // A build arg in effect is part of a RUN step's key.
    let with_arg = context(
        &b.dir().join("ctx-arg"),
        &[("Dockerfile", "FROM localhost/busybox:latest\nARG V=1\nRUN echo $V > /v\n")],
    );
    b.ok(&["build", "-t", "localhost/arg:1", s(&with_arg)]);
    let other = b.ok(&["build", "-t", "localhost/arg:2", "--build-arg", "V=2", s(&with_arg)]);
    assert_eq!(cached_steps(&other), 0, "{other}");
    assert_eq!(b.ok(&["run", "--rm", "--network", "none", "localhost/arg:2", "cat", "/v"]), "2\n");

    // `system prune` drops the cache no image builds on, and keeps what the tagged images use.
    b.ok(&["rmi", "localhost/arg:1", "localhost/arg:2"]);
    b.ok(&["system", "prune", "-f"]);
    let again = b.ok(&["build", "-t", "localhost/arg:1", s(&with_arg)]);
    // The ARG step adds no layer to busybox's, which an image still uses: only it stays.
    assert_eq!(cached_steps(&again), 1, "the dropped cache is gone: {again}");
    assert!(again.contains("Running in"), "the RUN step ran again: {again}");
    let kept = b.ok(&build);
    assert_eq!(cached_steps(&kept), 5, "the cache of a tagged image stays: {kept}");
}

/// The last "receiving N of M files" berthd logged for a kept context.
fn files_received(b: &Berthd) -> String {
    let log = b.log_tail(200);
    let line =
        log.lines().rev().find(|l| l.contains("build context ")).unwrap_or_else(|| panic!("no sync logged: {log}"));
    line.split("receiving ").nth(1).unwrap_or(line).trim().to_string()
}

#[test]
fn a_directory_context_is_kept_and_only_changed_files_are_sent_again() {
    let b = daemon();
    let dir = context(
        &b.dir().join("ctx-kept"),
        &[
            ("Dockerfile", "FROM localhost/busybox:latest\nCOPY . /ctx/\nCMD [\"sh\", \"-c\", \"cd /ctx && find . | sort && cat a.txt sub/c.txt\"]\n"),
            ("a.txt", "aaa\n"),
            ("b.txt", "bbb\n"),
            ("sub/c.txt", "ccc\n"),
        ],
    );
    // Files changed in the last 2 s are always sent (a change in the same clock tick could leave
    // their stat fields as they were): let these age first.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let build = ["build", "--no-cache", "-t", "localhost/kept:1", s(&dir)];
    b.ok(&build);
    assert_eq!(files_received(&b), "4 of 4 files");
    b.ok(&build);
    assert_eq!(files_received(&b), "0 of 4 files", "an unchanged context sends no file");
    let run = || b.ok(&["run", "--rm", "--network", "none", "localhost/kept:1"]);
    let listing = ".\n./Dockerfile\n./a.txt\n./b.txt\n./sub\n./sub/c.txt\n";
    assert_eq!(run(), format!("{listing}aaa\nccc\n"));

    // Changed, removed, replaced by a symlink, added: the next build sees exactly the new tree.
    std::fs::write(dir.join("a.txt"), "a2a2\n").expect("write");
    std::fs::remove_file(dir.join("b.txt")).expect("rm");
    std::fs::remove_file(dir.join("sub/c.txt")).expect("rm");
    std::os::unix::fs::symlink("../a.txt", dir.join("sub/c.txt")).expect("symlink");
    std::fs::write(dir.join("d.txt"), "ddd\n").expect("write");
    b.ok(&build);
    assert_eq!(files_received(&b), "2 of 3 files", "the changed and the new file");
    assert_eq!(run(), ".\n./Dockerfile\n./a.txt\n./d.txt\n./sub\n./sub/c.txt\na2a2\na2a2\n");
    assert_eq!(b.ok(&["run", "--rm", "--network", "none", "localhost/kept:1", "cat", "/ctx/d.txt"]), "ddd\n");

    // `system prune` removes the kept contexts no build is using.
    let kept = b.root().join("build-contexts");
    assert_eq!(std::fs::read_dir(&kept).expect("kept contexts").count(), 1);
    b.ok(&["system", "prune", "-f"]);
    assert_eq!(std::fs::read_dir(&kept).expect("kept contexts").count(), 0);
    b.ok(&build);
    assert_eq!(files_received(&b), "3 of 3 files", "a pruned context is sent whole");
}

/// Runs `cmd` with `input` on its stdin; its stdout, after checking it succeeded.
fn with_stdin(mut cmd: Command, input: &[u8]) -> String {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    child.stdin.take().expect("stdin").write_all(input).expect("writing stdin");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_dockerfile_or_a_tar_on_stdin_is_the_context() {
    let b = daemon();
    let dockerfile = "FROM localhost/busybox:latest\nRUN echo from stdin > /s\nCMD [\"cat\", \"/s\"]\n";
    let out = with_stdin(b.berth_cmd(&["build", "-t", "localhost/stdin:1", "-"]), dockerfile.as_bytes());
    assert!(out.contains("Successfully built"), "{out}");
    assert_eq!(b.ok(&["run", "--rm", "--network", "none", "localhost/stdin:1"]), "from stdin\n");
    // A gzipped tar with a Dockerfile and a file it copies.
    let dir = context(
        &b.dir().join("ctx-stdin"),
        &[("Dockerfile", "FROM localhost/busybox:latest\nCOPY f /f\n"), ("f", "in the tar\n")],
    );
    let tar = b.dir().join("ctx.tar.gz");
    run_ok(Command::new("tar").args(["-czf", s(&tar), "-C", s(&dir), "."]));
    let bytes = std::fs::read(&tar).expect("read tar");
    with_stdin(b.berth_cmd(&["build", "-t", "localhost/stdin:2", "-"]), &bytes);
    assert_eq!(b.ok(&["run", "--rm", "--network", "none", "localhost/stdin:2", "cat", "/f"]), "in the tar\n");
}

#[test]
fn onbuild_triggers_run_in_the_builds_that_start_from_the_image() {
    let b = daemon();
    let d = Docker::start("build-onbuild");
    let parent = context(
        &b.dir().join("ctx-parent"),
        &[(
            "Dockerfile",
            "FROM localhost/busybox:latest\nONBUILD COPY marker /marker\nONBUILD RUN echo triggered > /triggered\n",
        )],
    );
    let child = context(
        &b.dir().join("ctx-child"),
        &[
            ("Dockerfile", "FROM localhost/onbuild-parent:1\nRUN cat /marker /triggered > /both\n"),
            ("marker", "child's file\n"),
        ],
    );
    for engine_build in [
        &["build", "-t", "localhost/onbuild-parent:1", s(&parent)],
        &["build", "-t", "localhost/onbuild-child:1", s(&child)],
    ] {
        b.ok(engine_build);
        d.ok(engine_build);
    }
    assert_same_image(&b, &d, "localhost/onbuild-child:1");
    assert_eq!(
        b.ok(&["run", "--rm", "--network", "none", "localhost/onbuild-child:1", "cat", "/both"]),
        "child's file\ntriggered\n"
    );
}

#[test]
fn a_built_image_pushes_to_a_registry_and_pulls_back() {
    let b = daemon();
    let registry = berth_integration::engines::registry::Registry::start();
    let dir =
        context(&b.dir().join("ctx-push"), &[("Dockerfile", "FROM localhost/busybox:latest\nRUN echo pushed > /p\n")]);
    let name = format!("{}/built:1", registry.host());
    b.ok(&["build", "-t", &name, s(&dir)]);
    b.ok(&["push", &name]);
    b.ok(&["rmi", &name]);
    b.ok(&["pull", &name]);
    assert_eq!(b.ok(&["run", "--rm", "--network", "none", &name, "cat", "/p"]), "pushed\n");
}

fn build_dirs(b: &Berthd) -> Vec<String> {
    std::fs::read_dir(b.root().join("tmp"))
        .map(|e| {
            e.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("build"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn failures_read_like_dockers_and_leave_nothing_behind() {
    let b = daemon();
    let d = Docker::start("build-fail");
    let cases: &[(&str, &str)] = &[
        ("run-fails", "FROM localhost/busybox:latest\nRUN echo partial > /p\nRUN exit 3\n"),
        ("unknown-instruction", "FROM localhost/busybox:latest\nFOO bar\n"),
        ("no-from", "RUN true\n"),
        ("missing-file", "FROM localhost/busybox:latest\nCOPY nope /x\n"),
        ("outside", "FROM localhost/busybox:latest\nCOPY ../secret /x\n"),
        ("multi-dest", "FROM localhost/busybox:latest\nCOPY Dockerfile Dockerfile /x\n"),
    ];
    for (name, dockerfile) in cases {
        let dir = context(&b.dir().join(format!("ctx-{name}")), &[("Dockerfile", dockerfile)]);
        let build = ["build", "-t", "localhost/failed:1", s(&dir)];
        let (ours, theirs) = (b.berth(&build), d.run(&build));
        assert_eq!(ours.code, theirs.code, "{name}: exit codes\nberth: {ours}\ndocker: {theirs}");
        let last = |o: &Outcome| o.stderr.trim().lines().last().unwrap_or("").to_string();
        assert_eq!(last(&ours), last(&theirs), "{name}: the error");
        assert_ne!(b.berth(&["image", "inspect", "localhost/failed:1"]).code, 0, "{name}: nothing is tagged");
        assert_eq!(b.ok(&["ps", "-aq"]), "", "{name}: no container is left");
        assert!(build_dirs(&b).is_empty(), "{name}: build dirs left: {:?}", build_dirs(&b));
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        assert!(!mounts.contains(s(&b.root())), "{name}: a mount is left under berthd's root");
    }
    let failed = b.berth(&["build", s(&b.dir().join("ctx-run-fails"))]);
    assert!(failed.stdout.contains("Step 3/3 : RUN exit 3"), "{failed}");
    assert_eq!(failed.stderr.trim(), "The command '/bin/sh -c exit 3' returned a non-zero code: 3");
}

#[test]
fn a_context_cannot_make_the_build_read_outside_it() {
    let b = daemon();
    let d = Docker::start("build-hostile");
    let dir = context(
        &b.dir().join("ctx-hostile"),
        &[("Dockerfile", "FROM localhost/busybox:latest\nCOPY links/ /links/\nCOPY abs /abs-target\n")],
    );
    std::fs::create_dir_all(dir.join("links")).expect("mkdir");
    std::os::unix::fs::symlink("/etc/shadow", dir.join("links/shadow")).expect("symlink");
    std::os::unix::fs::symlink("../../../../etc", dir.join("links/up")).expect("symlink");
    // A named source that is an absolute link resolves inside the context, as docker's does.
    std::fs::write(dir.join("inside"), "inside the context\n").expect("write");
    std::os::unix::fs::symlink("/inside", dir.join("abs")).expect("symlink");
    let build = ["build", "-t", "localhost/hostile:1", s(&dir)];
    b.ok(&build);
    d.ok(&build);
    assert_same_image(&b, &d, "localhost/hostile:1");
    // A context file with a whiteout's name reaches berthd as a file, and COPY refuses it by
    // name rather than making a layer that would delete it.
    let wh = context(
        &b.dir().join("ctx-wh"),
        &[("Dockerfile", "FROM localhost/busybox:latest\nCOPY . /ctx/\n"), (".wh.keep", "a file\n")],
    );
    let refused = b.berth(&["build", s(&wh)]);
    assert!(refused.code != 0 && refused.stderr.contains("OCI whiteout name"), "{refused}");
    let probe = "readlink /links/shadow; readlink /links/up; cat /abs-target";
    assert_eq!(
        b.ok(&["run", "--rm", "--network", "none", "localhost/hostile:1", "sh", "-c", probe]),
        "/etc/shadow\n../../../../etc\ninside the context\n"
    );
}

#[test]
fn import_makes_an_image_of_a_filesystem_tar() {
    let b = daemon();
    let root = b.dir().join("import-root");
    std::fs::create_dir_all(root.join("bin")).expect("mkdir");
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("copy busybox");
    std::fs::write(root.join("hello"), "imported\n").expect("write");
    let tar = b.dir().join("fs.tar.gz");
    run_ok(Command::new("tar").args(["-czf", s(&tar), "-C", s(&root), "."]));
    let id = b.ok(&[
        "import",
        "-c",
        "CMD [\"/bin/busybox\", \"cat\", \"/hello\"]",
        "-m",
        "from a tar",
        s(&tar),
        "localhost/imported:1",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(b.ok(&["run", "--rm", "--network", "none", "localhost/imported:1"]), "imported\n");
    let history = b.ok(&["history", "--format", "{{.Comment}}", "localhost/imported:1"]);
    assert_eq!(history.trim(), "from a tar");
    let bad = b.berth(&["import", "-c", "RUN true", s(&tar)]);
    assert!(bad.code != 0 && bad.stderr.contains("run is not a valid change command"), "{bad}");
}

/// This machine's platform as registries name it.
fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("linux/{arch}")
}

#[test]
fn build_flags_work_as_dockers() {
    let b = daemon();
    let d = Docker::start("build-flags");
    let dir = context(
        &b.dir().join("ctx-flags"),
        &[
            ("sub/Other.dockerfile", "FROM localhost/busybox:latest\nLABEL from=file\nRUN ls /sys/class/net > /nets\n"),
            ("x", "x\n"),
        ],
    );
    let outside = b.dir().join("Outside.dockerfile");
    std::fs::write(&outside, "FROM localhost/busybox:latest\nCOPY x /x\n").expect("write");
    // -f inside the context, --label, --platform (the host's), --progress, --network none.
    let inside = dir.join("sub/Other.dockerfile");
    let host = host_platform();
    let build = [
        "build",
        "-f",
        s(&inside),
        "--label",
        "k=v",
        "--label",
        "from=flag",
        "--platform",
        &host,
        "--progress",
        "plain",
        "--network",
        "none",
        "-t",
        "localhost/flags:1",
        s(&dir),
    ];
    b.ok(&build);
    d.ok(&build);
    assert_same_config(&b, &d, "localhost/flags:1");
    assert_eq!(
        b.ok(&["run", "--rm", "--network", "none", "localhost/flags:1", "cat", "/nets"]),
        "lo\n",
        "--network none: RUN saw only lo"
    );
    // -f outside the context: sent under a generated name, as docker's client does.
    let build = ["build", "-f", s(&outside), "-t", "localhost/flags:2", s(&dir)];
    b.ok(&build);
    d.ok(&build);
    assert_same_image(&b, &d, "localhost/flags:2");
    // --pull fetches the base from its registry even though it is stored.
    let registry = berth_integration::engines::registry::Registry::start();
    let base = format!("{}/base:1", registry.host());
    b.ok(&["tag", "localhost/busybox:latest", &base]);
    b.ok(&["push", &base]);
    let pulled = context(&b.dir().join("ctx-pull"), &[("Dockerfile", &format!("FROM {base}\nRUN true\n"))]);
    let out = b.ok(&["build", "--pull", "-t", "localhost/flags:3", s(&pulled)]);
    assert!(out.contains("Successfully built"), "{out}");
    // FROM --platform: the host's works; another one is refused, not silently replaced.
    let platforms = context(
        &b.dir().join("ctx-platform"),
        &[
            ("Dockerfile", &format!("FROM --platform={} localhost/busybox:latest\nRUN true\n", host_platform())),
            ("Other", "FROM --platform=linux/s390x localhost/busybox:latest\nRUN true\n"),
        ],
    );
    b.ok(&["build", s(&platforms)]);
    let other = b.berth(&["build", "-f", s(&platforms.join("Other")), s(&platforms)]);
    assert!(other.code != 0 && other.stderr.contains("does not match the specified platform"), "{other}");
    let bad = ["build", "--progress", "fancy", s(&dir)];
    assert_ne!(b.berth(&bad).code, 0, "an unknown --progress is refused");
}

#[test]
fn a_build_cut_short_by_a_berthd_kill_leaves_nothing_after_the_restart() {
    let mut b = daemon();
    let dir = context(
        &b.dir().join("ctx-killed"),
        &[("Dockerfile", "FROM localhost/busybox:latest\nCOPY Dockerfile /d\nRUN sleep 60\n")],
    );
    let build = berth_integration::engines::process::Background::spawn(&mut b.berth_cmd(&["build", s(&dir)]));
    berth_integration::wait_until("the RUN step's container runs", std::time::Duration::from_secs(30), || {
        !b.ok(&["ps", "-q"]).trim().is_empty()
    });
    b.kill9();
    let _ = build.wait();
    b.restart();
    assert_eq!(b.ok(&["ps", "-aq"]), "", "the build's container is gone");
    assert!(build_dirs(&b).is_empty(), "build dirs left: {:?}", build_dirs(&b));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!mounts.contains(s(&b.root())), "a mount is left under berthd's root");
    // berthd builds again.
    let again = b.ok(&[
        "build",
        "-t",
        "localhost/killed:1",
        s(&context(
            &b.dir().join("ctx-killed2"),
            &[("Dockerfile", "FROM localhost/busybox:latest\nCOPY Dockerfile /d\n")],
        )),
    ]);
    assert!(again.contains("Successfully tagged localhost/killed:1"), "{again}");
}
