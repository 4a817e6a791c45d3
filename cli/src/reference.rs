//! Image names and IDs as people read and type them: docker's familiar form of berthd's
//! normalised names (`docker.io/library/busybox:latest` reads `busybox:latest`), short image IDs,
//! and the ID prefixes `rmi`, `tag` and `inspect` accept in place of a name.

use std::fmt;

/// Docker Hub's registry host, which familiar names leave out.
const DOCKER_HUB: &str = "docker.io";
/// An alias of [`DOCKER_HUB`] that older clients wrote.
const DOCKER_HUB_ALIAS: &str = "index.docker.io";
/// Docker Hub's namespace of official images, which familiar names leave out too.
const OFFICIAL_NAMESPACE: &str = "library";
/// How many hex digits of an image ID docker shows.
const SHORT_ID_LEN: usize = 12;
/// Fewer hex digits than this are taken as a name, never as an ID prefix (docker's rule too).
const MIN_ID_PREFIX_LEN: usize = 3;
/// Hex digits of a sha256 digest.
const SHA256_HEX_LEN: usize = 64;

/// A normalised image name (`registry/repository[:tag][@digest]`) split into docker's REPOSITORY,
/// TAG and DIGEST columns, with the repository in its familiar form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamiliarName {
    /// `busybox`, `someone/app`, `ghcr.io/o/r`, `localhost:5000/app`.
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<hex>` when the name pins a digest.
    pub digest: Option<String>,
}

/// The repository of the names berthd gives untagged images (`berth-dangling@<digest>`).
const DANGLING_REPOSITORY: &str = "berth-dangling";

impl FamiliarName {
    /// Whether this is the name of an untagged image: docker's `<none>:<none>`.
    pub fn is_dangling(&self) -> bool {
        self.repository == DANGLING_REPOSITORY && self.tag.is_none()
    }

    /// Splits `name`. It never fails: berthd's names are already valid, and a user's argument is
    /// only compared, never trusted.
    pub fn parse(name: &str) -> FamiliarName {
        let (repository, tag, digest) = split_name(name);
        FamiliarName {
            repository: familiar_repository(repository).to_string(),
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        }
    }
}

/// Splits `registry/repository[:tag][@digest]` into its repository (registry included), tag and
/// digest, as written.
pub fn split_name(name: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, digest) = match name.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (name, None),
    };
    // A ':' after the last '/' starts the tag; one before it is a registry port.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..]), digest),
        None => (rest, None, digest),
    }
}

/// `name` as docker completes it when it names neither a tag nor a digest: `busybox:latest`.
pub fn with_default_tag(name: &str) -> String {
    match split_name(name) {
        (_, None, None) => format!("{name}:latest"),
        _ => name.to_string(),
    }
}

impl fmt::Display for FamiliarName {
    /// `busybox:latest`, `busybox@sha256:…`, `busybox:1.36@sha256:…`: how docker prints a name
    /// in status lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Leaves out `docker.io/` and, for a one-part official image, `library/`.
fn familiar_repository(repository: &str) -> &str {
    let hub_path = repository
        .strip_prefix(DOCKER_HUB)
        .or_else(|| repository.strip_prefix(DOCKER_HUB_ALIAS))
        .and_then(|r| r.strip_prefix('/'));
    match hub_path {
        Some(path) => match path.strip_prefix(OFFICIAL_NAMESPACE).and_then(|p| p.strip_prefix('/')) {
            Some(official) if !official.contains('/') => official,
            _ => path,
        },
        None => repository,
    }
}

/// The repository path without its registry host, as docker's `<tag>: Pulling from <path>` shows
/// it (`docker.io/library/busybox` is `library/busybox`).
pub fn repository_path(normalised_repository: &str) -> &str {
    match normalised_repository.split_once('/') {
        Some((host, path)) if host.contains(['.', ':']) || host == "localhost" => path,
        _ => normalised_repository,
    }
}

/// The first 12 hex digits of a digest: docker's IMAGE ID column and layer prefixes.
pub fn short_id(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, hex)| hex);
    hex.get(..SHORT_ID_LEN).unwrap_or(hex)
}

/// An argument that may name an image by ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdPrefix<'a> {
    /// The lowercase hex digits typed.
    pub hex: &'a str,
    /// Typed as `sha256:<hex>`, so certainly an ID; bare hex (`3f57d9`) may also be an image
    /// name, which wins, as in docker.
    pub explicit: bool,
}

/// Whether `arg` can be an image ID prefix: `sha256:` and 1–64 hex digits, or 3–64 bare hex digits.
pub fn parse_id_prefix(arg: &str) -> Option<IdPrefix<'_>> {
    let is_hex = |s: &str| s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    match arg.strip_prefix("sha256:") {
        Some(hex) if (1..=SHA256_HEX_LEN).contains(&hex.len()) && is_hex(hex) => Some(IdPrefix { hex, explicit: true }),
        Some(_) => None,
        None if (MIN_ID_PREFIX_LEN..=SHA256_HEX_LEN).contains(&arg.len()) && is_hex(arg) => {
            Some(IdPrefix { hex: arg, explicit: false })
        }
        None => None,
    }
}

/// The distinct image IDs (`sha256:<hex>` config digests) among `ids` that start with `prefix`,
/// sorted; more than one means the prefix is ambiguous.
pub fn matching_ids<'a>(prefix: &str, ids: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut matches: Vec<&str> =
        ids.into_iter().filter(|id| id.strip_prefix("sha256:").is_some_and(|hex| hex.starts_with(prefix))).collect();
    matches.sort_unstable();
    matches.dedup();
    matches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(name: &str) -> (String, Option<String>, Option<String>) {
        let f = FamiliarName::parse(name);
        (f.repository, f.tag, f.digest)
    }

    #[test]
    fn names_without_tag_or_digest_get_latest() {
        assert_eq!(with_default_tag("busybox"), "busybox:latest");
        assert_eq!(with_default_tag("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(with_default_tag("busybox:1.36"), "busybox:1.36");
        assert_eq!(with_default_tag("busybox@sha256:aa"), "busybox@sha256:aa");
    }

    #[test]
    fn official_hub_images_lose_registry_and_library() {
        assert_eq!(split("docker.io/library/busybox:latest"), ("busybox".into(), Some("latest".into()), None));
        assert_eq!(FamiliarName::parse("docker.io/library/busybox:latest").to_string(), "busybox:latest");
    }

    #[test]
    fn hub_user_images_keep_their_namespace() {
        assert_eq!(split("docker.io/someone/app:1.0"), ("someone/app".into(), Some("1.0".into()), None));
        assert_eq!(split("docker.io/library/a/b:x").0, "library/a/b");
        assert_eq!(split("index.docker.io/library/alpine:3").0, "alpine");
    }

    #[test]
    fn other_registries_keep_their_host_and_port() {
        assert_eq!(split("ghcr.io/o/r:v1"), ("ghcr.io/o/r".into(), Some("v1".into()), None));
        assert_eq!(split("localhost:5000/app:1.0"), ("localhost:5000/app".into(), Some("1.0".into()), None));
        assert_eq!(split("localhost:5000/app"), ("localhost:5000/app".into(), None, None));
        assert_eq!(split("docker.io.example.com/app:1").0, "docker.io.example.com/app");
    }

    #[test]
    fn digest_only_names_have_no_tag() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let f = FamiliarName::parse(&format!("docker.io/library/busybox@{digest}"));
        assert_eq!((f.repository.as_str(), f.tag.as_deref(), f.digest.as_deref()), ("busybox", None, Some(&*digest)));
        assert_eq!(f.to_string(), format!("busybox@{digest}"));
        let both = FamiliarName::parse(&format!("docker.io/library/busybox:1.36@{digest}"));
        assert_eq!(both.tag.as_deref(), Some("1.36"));
        assert_eq!(both.digest.as_deref(), Some(&*digest));
    }

    #[test]
    fn repository_path_drops_only_a_registry_host() {
        assert_eq!(repository_path("docker.io/library/busybox"), "library/busybox");
        assert_eq!(repository_path("localhost:5000/app"), "app");
        assert_eq!(repository_path("localhost/app"), "app");
        assert_eq!(repository_path("someone/app"), "someone/app");
    }

    #[test]
    fn short_id_is_twelve_hex_digits_without_algorithm() {
        assert_eq!(short_id(&format!("sha256:{}", "0123456789abcdef".repeat(4))), "0123456789ab");
        assert_eq!(short_id("sha256:abc"), "abc");
    }

    #[test]
    fn id_prefixes_need_three_hex_digits_unless_explicit() {
        assert_eq!(parse_id_prefix("3f5"), Some(IdPrefix { hex: "3f5", explicit: false }));
        assert_eq!(parse_id_prefix("3f"), None);
        assert_eq!(parse_id_prefix("sha256:3"), Some(IdPrefix { hex: "3", explicit: true }));
        assert_eq!(parse_id_prefix("sha256:"), None);
        assert_eq!(parse_id_prefix("busybox"), None);
        assert_eq!(parse_id_prefix("3F57"), None);
        assert_eq!(parse_id_prefix(&"a".repeat(65)), None);
        assert_eq!(parse_id_prefix(&"a".repeat(64)).map(|p| p.explicit), Some(false));
    }

    #[test]
    fn id_prefix_matches_distinct_ids_by_hex_start() {
        let a = format!("sha256:abc1{}", "0".repeat(60));
        let b = format!("sha256:abc2{}", "0".repeat(60));
        let ids = [a.as_str(), b.as_str(), a.as_str()];
        assert_eq!(matching_ids("abc1", ids), vec![a.as_str()]);
        assert_eq!(matching_ids("abc", ids), vec![a.as_str(), b.as_str()]);
        assert!(matching_ids("abd", ids).is_empty());
    }
}
