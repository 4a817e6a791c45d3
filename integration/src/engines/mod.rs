//! Real container engines driving berth-runtime, for the interop tests: an offline busybox image
//! (`fixtures/make-busybox-image.sh`), private instances of containerd, podman and dockerd under a
//! scratch directory, and the checks that a container really ran under berth-runtime.
//! Every fixture tears down what it started when dropped, so a failed assertion cleans up too.

pub mod berth;
pub mod berthd;
pub mod containerd;
pub mod docker;
pub mod image;
pub mod netns;
pub mod podman;
pub mod process;
pub mod registry;
pub mod scratch;
pub mod workload;

use std::path::{Path, PathBuf};

/// `path`, after checking that the engine binary is installed; panics telling how to install it.
/// The interop tests never skip: a missing engine is a failure.
pub fn engine_binary(path: &str) -> PathBuf {
    let bin = Path::new(path);
    assert!(
        bin.is_file(),
        "{path} is missing: run scripts/install-deps.sh as root (it installs containerd, docker.io, podman, \
         skopeo and umoci)"
    );
    bin.to_path_buf()
}

/// PATH for the daemons: Debian's binaries only, so that a shim, runc or docker-proxy found by name
/// is the packaged one (this machine has an unrelated docker CLI in /usr/local/bin).
pub const DAEMON_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
