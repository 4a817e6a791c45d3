//! The busybox image the engines run, built offline by `fixtures/make-busybox-image.sh` from the
//! same busybox-static rootfs as the integration tests' bundles.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The name the image gets in every engine. A localhost name: no engine may ever look for it on
/// Docker Hub.
pub const IMAGE_REF: &str = "localhost/busybox:latest";

/// The outputs of `make-busybox-image.sh` in one directory.
pub struct BusyboxImage {
    dir: PathBuf,
}

impl BusyboxImage {
    /// Builds the image into `dir` (umoci and skopeo; a second or so).
    pub fn build(dir: &Path) -> BusyboxImage {
        super::engine_binary("/usr/bin/umoci");
        super::engine_binary("/usr/bin/skopeo");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/make-busybox-image.sh");
        let out = super::process::run(Command::new("bash").arg(&script).arg(dir).env("IMAGE_REF", IMAGE_REF));
        assert_eq!(out.code, 0, "make-busybox-image.sh failed: {out}");
        BusyboxImage { dir: dir.to_path_buf() }
    }

    /// The OCI image layout (tags `latest` and `pause`).
    pub fn layout(&self) -> PathBuf {
        self.dir.join("oci")
    }

    /// The oci-archive of `latest`, named [`IMAGE_REF`].
    pub fn oci_archive(&self) -> PathBuf {
        self.dir.join("busybox-oci.tar")
    }

    /// The docker-archive of `latest`, tagged [`IMAGE_REF`].
    pub fn docker_archive(&self) -> PathBuf {
        self.dir.join("busybox-docker.tar")
    }
}

/// The variable that names a prebuilt docker-archive of [`IMAGE_REF`], for hosts without umoci
/// and skopeo: scripts/vm-test.sh builds the image on the host and stages it in its VM.
pub const IMAGE_ARCHIVE_ENV: &str = "BERTH_IMAGE_ARCHIVE";

/// The docker-archive [`IMAGE_ARCHIVE_ENV`] names, if it is set (and not empty).
pub fn prebuilt_docker_archive() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os(IMAGE_ARCHIVE_ENV).filter(|v| !v.is_empty())?);
    assert!(path.is_file(), "{IMAGE_ARCHIVE_ENV}={} is not a file", path.display());
    Some(path)
}

/// Writes `archive`: an OCI archive of the OCI `layout` holding only its image tagged `tag`,
/// renamed to the full reference `name` (which `berth load` takes as the image's name).
pub fn single_image_oci_archive(layout: &Path, tag: &str, name: &str, archive: &Path) {
    const REF_NAME: &str = "org.opencontainers.image.ref.name";
    let index_path = layout.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&index_path).expect("reading index.json"))
            .expect("index.json is JSON");
    let manifests = index["manifests"].as_array_mut().expect("index.json has manifests");
    manifests.retain(|d| d["annotations"][REF_NAME] == tag);
    assert_eq!(manifests.len(), 1, "{} has no single image tagged {tag}", layout.display());
    manifests[0]["annotations"][REF_NAME] = name.into();
    std::fs::write(&index_path, index.to_string()).expect("writing index.json");
    super::process::run_ok(Command::new("tar").arg("-C").arg(layout).arg("-cf").arg(archive).arg("."));
}
