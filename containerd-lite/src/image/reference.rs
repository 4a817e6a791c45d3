//! Image references (`busybox`, `localhost:5000/app:1.0`, `ghcr.io/o/r@sha256:…`): parsed with the
//! distribution grammar and normalised the way docker does (`busybox` is
//! `docker.io/library/busybox:latest`), so every other module sees one canonical form.

use std::fmt;
use std::str::FromStr;

use crate::store::digest::{Digest, DigestError};

/// Docker Hub's canonical name; `index.docker.io` is an alias of it.
pub const DOCKER_HUB: &str = "docker.io";
/// The namespace of Docker Hub's official images (`busybox` is `library/busybox`).
const OFFICIAL_NAMESPACE: &str = "library";
/// The tag a reference without tag or digest gets.
pub const DEFAULT_TAG: &str = "latest";
/// The longest `registry/repository` the distribution grammar allows.
const NAME_MAX: usize = 255;
/// The longest tag the distribution grammar allows.
const TAG_MAX: usize = 128;

/// What is wrong with a reference; every message names the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference: empty")]
    Empty,
    #[error("invalid reference {input:?}: repository name must be lowercase")]
    Uppercase { input: String },
    #[error("invalid reference {input:?}: {reason}")]
    Name { input: String, reason: String },
    #[error("invalid reference {input:?}: invalid registry host {host:?}")]
    Registry { input: String, host: String },
    #[error("invalid reference {input:?}: invalid tag {tag:?} (expected [A-Za-z0-9_][A-Za-z0-9_.-], at most 128 characters)")]
    Tag { input: String, tag: String },
    #[error("invalid reference {input:?}: {source}")]
    Digest {
        input: String,
        #[source]
        source: DigestError,
    },
    #[error("invalid reference {input:?}: name longer than {NAME_MAX} characters")]
    TooLong { input: String },
}

/// A normalised image reference: `registry/repository[:tag][@digest]`. After [`Reference::parse`]
/// at least one of `tag` and `digest` is set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// Registry host with optional port (`docker.io`, `localhost:5000`, `[::1]:5000`).
    pub registry: String,
    /// Repository path inside the registry (`library/busybox`).
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalises `input` (docker's rules: no registry means Docker Hub, a one-part Hub
    /// name is in `library/`, no tag and no digest means `:latest`).
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, d)) => {
                let digest = d
                    .parse::<Digest>()
                    .map_err(|source| ReferenceError::Digest { input: input.to_string(), source })?;
                (rest, Some(digest))
            }
            None => (input, None),
        };
        // A ':' after the last '/' starts the tag; one before it is a registry port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            if !valid_tag(tag) {
                return Err(ReferenceError::Tag { input: input.to_string(), tag: tag.to_string() });
            }
        }
        let (registry, repository) = split_registry(name);
        if !valid_registry(registry) {
            return Err(ReferenceError::Registry { input: input.to_string(), host: registry.to_string() });
        }
        let registry = if registry == "index.docker.io" { DOCKER_HUB } else { registry };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("{OFFICIAL_NAMESPACE}/{repository}")
        } else {
            repository.to_string()
        };
        validate_repository(input, &repository)?;
        if registry.len() + 1 + repository.len() > NAME_MAX {
            return Err(ReferenceError::TooLong { input: input.to_string() });
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference { registry: registry.to_string(), repository, tag, digest })
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// Docker's short form: Docker Hub's registry and `library/` left out (`busybox:latest`,
    /// `user/app:1`); any other registry is kept (`localhost:5000/x:t`).
    pub fn familiar(&self) -> String {
        let name = if self.registry == DOCKER_HUB {
            match self.repository.strip_prefix("library/") {
                Some(short) if !short.contains('/') => short.to_string(),
                _ => self.repository.clone(),
            }
        } else {
            self.name()
        };
        format!("{name}{}", self.suffix())
    }

    /// The same repository and tag, pinned to `digest` (`name:tag@digest`).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference { digest: Some(digest), ..self.clone() }
    }

    /// The same repository under tag `tag`, without a digest (a digest would pin whatever the
    /// tag now names).
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        if !valid_tag(tag) {
            return Err(ReferenceError::Tag { input: self.to_string(), tag: tag.to_string() });
        }
        Ok(Reference { tag: Some(tag.to_string()), digest: None, ..self.clone() })
    }

    /// The reference in oci-client's form, for the registry client.
    pub fn to_oci(&self) -> oci_client::Reference {
        let (registry, repository) = (self.registry.clone(), self.repository.clone());
        match (&self.tag, &self.digest) {
            (Some(t), Some(d)) => {
                oci_client::Reference::with_tag_and_digest(registry, repository, t.clone(), d.to_string())
            }
            (None, Some(d)) => oci_client::Reference::with_digest(registry, repository, d.to_string()),
            (Some(t), None) => oci_client::Reference::with_tag(registry, repository, t.clone()),
            (None, None) => oci_client::Reference::with_tag(registry, repository, DEFAULT_TAG.to_string()),
        }
    }

    /// `:tag`, `@digest`, both or neither.
    fn suffix(&self) -> String {
        let mut s = String::new();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}{}", self.registry, self.repository, self.suffix())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

impl From<&Reference> for oci_client::Reference {
    fn from(r: &Reference) -> Self {
        r.to_oci()
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Splits `name` into registry and repository by docker's rule: the first component is a
/// registry if it contains `.` or `:`, is `localhost`, or has an uppercase letter (which no
/// repository may have).
fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':']) || first == "localhost" || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DOCKER_HUB, name),
    }
}

/// `host[:port]` where host is a DNS name, an IPv4 address or a bracketed IPv6 address.
fn valid_registry(registry: &str) -> bool {
    let (host, port) = if let Some(v6) = registry.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else { return false };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return false,
            },
        }
    } else {
        match registry.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(registry), None),
        }
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = host.is_none_or(|h| {
        !h.is_empty()
            && h.split('.').all(|label| {
                !label.is_empty()
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            })
    });
    port_ok && host_ok
}

/// Repository path components: `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn validate_repository(input: &str, repository: &str) -> Result<(), ReferenceError> {
    let bad = |reason: &str| ReferenceError::Name { input: input.to_string(), reason: reason.to_string() };
    if repository.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(ReferenceError::Uppercase { input: input.to_string() });
    }
    for component in repository.split('/') {
        if component.is_empty() {
            return Err(bad("empty path component"));
        }
        if !valid_path_component(component) {
            return Err(bad(&format!("invalid path component {component:?}")));
        }
    }
    Ok(())
}

fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if !b.first().copied().is_some_and(alnum) || !b.last().copied().is_some_and(alnum) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: `.`, `_`, `__` or any number of `-`.
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`.
fn valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = tag.as_bytes();
    !b.is_empty() && b.len() <= TAG_MAX && word(b[0]) && b[1..].iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn normalises_like_docker() {
        for (input, full, familiar) in [
            ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
            ("user/app", "docker.io/user/app:latest", "user/app:latest"),
            ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
            ("index.docker.io/library/busybox:x", "docker.io/library/busybox:x", "busybox:x"),
            ("docker.io/library/a/b", "docker.io/library/a/b:latest", "library/a/b:latest"),
            ("localhost/busybox", "localhost/busybox:latest", "localhost/busybox:latest"),
            ("localhost:5000/a/b:tag", "localhost:5000/a/b:tag", "localhost:5000/a/b:tag"),
            ("ghcr.io/o/r:v1.2.3-rc_1", "ghcr.io/o/r:v1.2.3-rc_1", "ghcr.io/o/r:v1.2.3-rc_1"),
            ("[::1]:5000/x", "[::1]:5000/x:latest", "[::1]:5000/x:latest"),
            ("u-1/a--b__c.d", "docker.io/u-1/a--b__c.d:latest", "u-1/a--b__c.d:latest"),
        ] {
            let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.to_string(), full, "{input}");
            assert_eq!(r.familiar(), familiar, "{input}");
            assert_eq!(Reference::parse(&r.to_string()).as_ref(), Ok(&r), "{input} does not round-trip");
        }
    }

    #[test]
    fn digest_references_keep_or_omit_the_tag() {
        let r = Reference::parse(&format!("127.0.0.1:5000/x@{D}")).expect("parse");
        assert_eq!((r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()), ("127.0.0.1:5000", "x", None));
        assert_eq!(r.digest.as_ref().map(ToString::to_string).as_deref(), Some(D));
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/x@{D}"));

        let r = Reference::parse(&format!("busybox:1@{D}")).expect("parse");
        assert_eq!(r.tag.as_deref(), Some("1"));
        assert_eq!(r.familiar(), format!("busybox:1@{D}"));
        let oci = r.to_oci();
        assert_eq!(
            (oci.registry(), oci.repository(), oci.tag(), oci.digest()),
            ("docker.io", "library/busybox", Some("1"), Some(D))
        );
    }

    #[test]
    fn with_tag_and_with_digest() {
        let r = Reference::parse("localhost:5000/a").expect("parse");
        let d: Digest = D.parse().expect("digest");
        assert_eq!(r.with_digest(d.clone()).to_string(), format!("localhost:5000/a:latest@{D}"));
        let pinned = r.with_digest(d);
        assert_eq!(pinned.with_tag("v2").expect("tag").to_string(), "localhost:5000/a:v2");
        assert!(r.with_tag("-bad").is_err());
        assert!(r.with_tag(&"t".repeat(129)).is_err());
    }

    #[test]
    fn rejects_invalid_references() {
        let long_tag = format!("busybox:{}", "t".repeat(129));
        let long_name = format!("r/{}", "a".repeat(260));
        for bad in [
            "",
            "Busybox",
            "user/App",
            "localhost:5000/App",
            "busybox:",
            "busybox:-x",
            "busybox:.x",
            "busybox:a/b",
            long_tag.as_str(),
            long_name.as_str(),
            "a//b",
            "a/",
            "/a",
            "a/../b",
            "..",
            "a/./b",
            "a..b",
            "a___b",
            "-a",
            "a-",
            "a_",
            "a b",
            "busybox@sha256:abc",
            "busybox@md5:d41d8cd98f00b204e9800998ecf8427e",
            "busybox@",
            "host:port/a",
            "host:123456/a",
            "[::1/a",
            "[zz]:5000/a",
            "bad_host.io/a",
            "-host.io/a",
            "a@b@sha256:x",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} accepted as {:?}", Reference::parse(bad));
        }
        assert_eq!(Reference::parse("Busybox"), Err(ReferenceError::Uppercase { input: "Busybox".into() }));
        assert!(matches!(Reference::parse("a:-x"), Err(ReferenceError::Tag { .. })));
        assert!(matches!(Reference::parse("a@sha256:x"), Err(ReferenceError::Digest { .. })));
    }

    #[test]
    fn longest_tag_is_accepted() {
        let tag = "t".repeat(128);
        assert_eq!(Reference::parse(&format!("a:{tag}")).expect("parse").tag.as_deref(), Some(tag.as_str()));
    }
}
