//! The registry client: resolves references to manifests, streams blobs down (with HTTP Range
//! resume) and up, over oci-client. It owns the transport decision (HTTPS, plain HTTP only for
//! loopback and `insecure` registries) and credentials from docker's `config.json`; it verifies
//! manifests but not blobs, which the content store verifies on commit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use oci_client::client::{BlobResponse, ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError as OciDigestError, OciDistributionError, OciEnvelope, OciErrorCode};
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::image::reference::{Reference, DOCKER_HUB};
use crate::store::digest::Digest;

/// The largest manifest or index berth accepts, as containerd does.
pub const MAX_MANIFEST_SIZE: usize = crate::image::MAX_METADATA_BLOB as usize;

/// What a manifest request accepts: OCI index and manifest, Docker manifest list and schema 2.
pub const MANIFEST_MEDIA_TYPES: [&str; 4] =
    [OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE, IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE];

/// Bytes read from a push source per upload request (oci-client's largest PATCH chunk), and so
/// the most of a pushed blob held in memory at once.
const PUSH_CHUNK: u64 = 4 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one read from the registry may stall before the transfer counts as interrupted.
const READ_TIMEOUT: Duration = Duration::from_secs(120);
const USER_AGENT: &str = concat!("berth/", env!("CARGO_PKG_VERSION"));

/// One-line, user-facing registry failures.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot reach registry {registry}: {reason}")]
    Unreachable { registry: String, reason: String },
    #[error("registry {registry} denied access: authentication required or credentials rejected")]
    Unauthorized { registry: String },
    #[error("manifest unknown: {reference}")]
    ManifestUnknown { reference: String },
    #[error("blob {digest} unknown in {repository}")]
    BlobUnknown { repository: String, digest: Digest },
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch { what: String, expected: String, actual: String },
    #[error("{what} is larger than the {limit} bytes allowed")]
    TooLarge { what: String, limit: u64 },
    #[error("blob {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch { digest: Digest, expected: u64, actual: u64 },
    #[error("blob {digest}: resume offset {offset} is beyond its size {size}")]
    BadOffset { digest: Digest, offset: u64, size: u64 },
    #[error("download of {digest} from {registry} interrupted after {received} bytes: {reason}")]
    Interrupted { registry: String, digest: Digest, received: u64, reason: String },
    #[error("registry {registry} rejected {what}: {reason}")]
    Rejected { registry: String, what: String, reason: String },
    #[error("login attempt to {url} failed with status: {status}")]
    LoginFailed { url: String, status: String },
    #[error("reading registry credentials from {}: {reason}", path.display())]
    AuthConfig { path: PathBuf, reason: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("registry protocol error: {0}")]
    Protocol(String),
}

/// How the client reaches registries.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Registries (`host` for any port, or `host:port`) that may be reached over plain HTTP.
    /// Loopback registries always may.
    pub insecure: Vec<String>,
    /// docker's `config.json` with credentials; default `$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`. A missing file means anonymous access.
    pub auth_file: Option<PathBuf>,
}

/// How one registry is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Https,
    /// Plain HTTP: loopback registries and those listed as insecure.
    Http,
}

/// The transport for `registry` (`host[:port]`): plain HTTP only for loopback hosts
/// (`localhost`, 127.0.0.0/8, ::1) and for registries in `insecure`, HTTPS for all others.
pub fn transport_for(registry: &str, insecure: &[String]) -> Transport {
    let host = host_of(registry);
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback || insecure.iter().any(|entry| entry == registry || entry == host) {
        Transport::Http
    } else {
        Transport::Https
    }
}

/// The host of `host[:port]` or `[v6]:port`, without brackets.
fn host_of(registry: &str) -> &str {
    if let Some(v6) = registry.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    registry.split(':').next().unwrap_or(registry)
}

/// A manifest or index as the registry serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub media_type: String,
    /// The digest of `bytes`, verified.
    pub digest: Digest,
    pub bytes: Vec<u8>,
}

/// How a blob download went. The sink always receives exactly bytes `offset..size`: when the
/// registry ignores the Range request the client reads and discards the first `offset` bytes
/// itself (as containerd does), so the caller never has to truncate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobFetch {
    /// Bytes written to the sink (`size - offset`).
    pub written: u64,
    /// False when the registry ignored the Range request and the first `offset` bytes were
    /// downloaded again (and discarded).
    pub range_honoured: bool,
}

/// What [`RegistryClient::push_blob`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobPush {
    /// The repository already had the blob; nothing was sent.
    AlreadyExists,
    Uploaded,
}

/// An async registry client; cheap to clone, shareable between tasks.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

struct Inner {
    insecure: Vec<String>,
    /// The docker `config.json` credentials come from and `login` writes to.
    auth_file: Option<PathBuf>,
    /// Credentials by registry (`docker.io`, `host:port`); `login`/`logout` change them.
    auths: Mutex<HashMap<String, RegistryAuth>>,
    /// One oci-client per registry: the transport is per registry, and each keeps its tokens.
    clients: Mutex<HashMap<String, oci_client::Client>>,
    /// Plain HTTP clients per registry, for the bounded manifest GET.
    http: Mutex<HashMap<String, reqwest::Client>>,
}

enum ReadLimited {
    TooLarge,
    Http(reqwest::Error),
}

/// Reads a response body, failing as soon as it exceeds `limit` bytes.
async fn read_limited(response: &mut reqwest::Response, limit: usize) -> Result<Vec<u8>, ReadLimited> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadLimited::Http)? {
        if body.len() + chunk.len() > limit {
            return Err(ReadLimited::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// What a request was about, to name it in errors.
#[derive(Clone, Copy)]
enum Target<'a> {
    Manifest,
    Blob(&'a Digest),
    Upload(&'a str),
}

impl RegistryClient {
    /// A client with the credentials of `opts.auth_file` (read now; a missing file means
    /// anonymous access, an unreadable or malformed one is an error).
    pub fn new(opts: RegistryOptions) -> Result<Self, RegistryError> {
        let path = opts.auth_file.or_else(default_auth_file);
        let auths = match &path {
            Some(path) => load_auths(path)?,
            None => HashMap::new(),
        };
        let inner = Inner {
            insecure: opts.insecure,
            auth_file: path,
            auths: Mutex::new(auths),
            clients: Mutex::new(HashMap::new()),
            http: Mutex::new(HashMap::new()),
        };
        Ok(RegistryClient { inner: Arc::new(inner) })
    }

    /// Resolves a tag or digest to the manifest or index as served: raw bytes, their digest and
    /// media type. The bytes are verified against the reference's digest, else against the
    /// registry's `Docker-Content-Digest`. Manifests over [`MAX_MANIFEST_SIZE`] are refused.
    pub async fn fetch_manifest(&self, r: &Reference) -> Result<Fetched, RegistryError> {
        let (body, served_digest) = self.get_manifest(r).await?;
        // A header digest in an algorithm berth does not store names nothing: the content is then
        // named by its sha256.
        let expected = match (&r.digest, served_digest.parse::<Digest>()) {
            (Some(d), _) => d.clone(),
            (None, Ok(d)) => d,
            (None, Err(_)) => Digest::sha256(&body),
        };
        let actual = Digest::of(expected.algorithm(), &body);
        if actual != expected {
            return Err(RegistryError::DigestMismatch {
                what: format!("manifest {r}"),
                expected: expected.to_string(),
                actual: actual.to_string(),
            });
        }
        let media_type = manifest_media_type(&body)
            .map_err(|reason| RegistryError::Protocol(format!("manifest {r} from {}: {reason}", r.registry)))?;
        Ok(Fetched { media_type, digest: actual, bytes: body.to_vec() })
    }

    /// Streams blob `digest` of `r`'s repository (`size` bytes) into `sink`, starting at
    /// `offset` (HTTP Range, to resume a partial download). `progress` gets the number of bytes
    /// of the blob the sink now holds (`offset` + written) after each chunk. The digest is not
    /// verified here unless the whole blob came in one response; the content store verifies it on
    /// commit. A transfer that breaks off fails with [`RegistryError::Interrupted`], whose
    /// `received` is the offset to resume from.
    pub async fn fetch_blob<W: AsyncWrite + Unpin + Send>(
        &self,
        r: &Reference,
        digest: &Digest,
        size: u64,
        offset: u64,
        sink: &mut W,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<BlobFetch, RegistryError> {
        if offset > size {
            return Err(RegistryError::BadOffset { digest: digest.clone(), offset, size });
        }
        if offset == size {
            return Ok(BlobFetch { written: 0, range_honoured: true });
        }
        let (client, oref, _) = self.session(r).await?;
        let name = digest.to_string();
        let classify_blob = |e| classify(e, r, Target::Blob(digest));
        let (response, mut discard, range_honoured) = if offset == 0 {
            (client.pull_blob_stream(&oref, name.as_str()).await.map_err(classify_blob)?, 0, true)
        } else {
            match client.pull_blob_stream_partial(&oref, name.as_str(), offset, None).await.map_err(classify_blob)? {
                BlobResponse::Partial(s) => (s, 0, true),
                BlobResponse::Full(s) => {
                    tracing::debug!(registry = %r.registry, %digest, offset, "registry ignored Range; re-reading the prefix");
                    (s, offset, false)
                }
            }
        };
        let mut stream = response.stream;
        let mut held = offset;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| stream_error(e, r, digest, held))?;
            let mut data = &chunk[..];
            if discard > 0 {
                let n = data.len().min(usize::try_from(discard).unwrap_or(usize::MAX));
                data = &data[n..];
                discard -= n as u64;
            }
            if data.is_empty() {
                continue;
            }
            let after = held + data.len() as u64;
            if after > size {
                return Err(RegistryError::SizeMismatch { digest: digest.clone(), expected: size, actual: after });
            }
            sink.write_all(data)
                .await
                .map_err(|source| RegistryError::Io { what: format!("writing blob {digest}"), source })?;
            held = after;
            progress(held);
        }
        sink.flush().await.map_err(|source| RegistryError::Io { what: format!("writing blob {digest}"), source })?;
        if held != size || discard > 0 {
            return Err(RegistryError::SizeMismatch { digest: digest.clone(), expected: size, actual: held });
        }
        Ok(BlobFetch { written: held - offset, range_honoured })
    }

    /// Whether `r`'s repository has blob `digest` (HEAD request).
    pub async fn blob_exists(&self, r: &Reference, digest: &Digest) -> Result<bool, RegistryError> {
        let (client, oref, _) = self.session(r).await?;
        client.blob_exists(&oref, &digest.to_string()).await.map_err(|e| classify(e, r, Target::Blob(digest)))
    }

    /// Uploads blob `digest` (`size` bytes read from `source`) to `r`'s repository, unless it is
    /// there already. The source is streamed in chunks of at most 4 MiB; the registry verifies
    /// the digest when the upload is committed.
    pub async fn push_blob<R: AsyncRead + Unpin + Send + 'static>(
        &self,
        r: &Reference,
        digest: &Digest,
        size: u64,
        source: R,
    ) -> Result<BlobPush, RegistryError> {
        if self.blob_exists(r, digest).await? {
            return Ok(BlobPush::AlreadyExists);
        }
        let (client, oref, _) = self.session(r).await?;
        // The stream can only hand oci-client a generic error; the precise one waits here.
        let source_failure = Arc::new(Mutex::new(None::<RegistryError>));
        let chunks = upload_chunks(source, size, digest.clone(), Arc::clone(&source_failure));
        let what = format!("blob {digest}");
        match client.push_blob_stream(&oref, chunks, &digest.to_string(), Some(size)).await {
            Ok(_) => Ok(BlobPush::Uploaded),
            Err(e) => Err(lock(&source_failure).take().unwrap_or_else(|| classify(e, r, Target::Upload(&what)))),
        }
    }

    /// Uploads a manifest or index under `r`'s tag (or its digest if it has no tag) and returns
    /// its digest. A digest in `r` must match `bytes`.
    pub async fn push_manifest(
        &self,
        r: &Reference,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> Result<Digest, RegistryError> {
        if bytes.len() > MAX_MANIFEST_SIZE {
            return Err(RegistryError::TooLarge { what: format!("manifest {r}"), limit: MAX_MANIFEST_SIZE as u64 });
        }
        let digest = match &r.digest {
            Some(want) => {
                let actual = Digest::of(want.algorithm(), &bytes);
                if &actual != want {
                    return Err(RegistryError::DigestMismatch {
                        what: format!("manifest to push to {r}"),
                        expected: want.to_string(),
                        actual: actual.to_string(),
                    });
                }
                actual
            }
            None => Digest::sha256(&bytes),
        };
        // With a tag, push to the tag: oci-client puts a reference with a digest by digest.
        let target = if r.tag.is_some() { Reference { digest: None, ..r.clone() } } else { r.clone() };
        let content_type = media_type
            .parse()
            .map_err(|e| RegistryError::Protocol(format!("media type {media_type:?} is not a valid header: {e}")))?;
        let (client, oref, _) = self.session(&target).await?;
        let what = format!("manifest {target}");
        client
            .push_manifest_raw(&oref, bytes, content_type)
            .await
            .map_err(|e| classify(e, r, Target::Upload(&what)))?;
        Ok(digest)
    }

    /// The oci-client for `r`'s registry with `r`'s credentials registered, and `r` in its form.
    /// GET of a manifest, read at most [`MAX_MANIFEST_SIZE`] bytes: oci-client's own manifest
    /// pull reads any body whole, so a hostile registry could make the daemon allocate without
    /// bound. oci-client still does the authentication (its bearer token flow); the request is
    /// ours. Returns the body and the `Docker-Content-Digest` header (empty if none).
    async fn get_manifest(&self, r: &Reference) -> Result<(Vec<u8>, String), RegistryError> {
        let (client, oref, auth) = self.session(r).await?;
        let token = client
            .auth(&oref, &auth, oci_client::RegistryOperation::Pull)
            .await
            .map_err(|e| classify(e, r, Target::Manifest))?;
        let scheme = match transport_for(&r.registry, &self.inner.insecure) {
            Transport::Https => "https",
            Transport::Http => "http",
        };
        let tag_or_digest = match (&r.digest, &r.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        };
        let url = format!("{scheme}://{}/v2/{}/manifests/{tag_or_digest}", oref.resolve_registry(), r.repository);
        let mut request =
            self.http_for(&r.registry)?.get(&url).header(reqwest::header::ACCEPT, MANIFEST_MEDIA_TYPES.join(", "));
        request = match (token, &auth) {
            (Some(token), _) => request.bearer_auth(token),
            (None, RegistryAuth::Basic(user, password)) => request.basic_auth(user, Some(password)),
            (None, _) => request,
        };
        let unreachable =
            |e: reqwest::Error| RegistryError::Unreachable { registry: r.registry.clone(), reason: chain(&e) };
        let mut response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        match status {
            200 => {}
            401 | 403 => return Err(RegistryError::Unauthorized { registry: r.registry.clone() }),
            404 => return Err(RegistryError::ManifestUnknown { reference: r.to_string() }),
            code => {
                let detail = read_limited(&mut response, 4096).await.unwrap_or_default();
                let detail = String::from_utf8_lossy(&detail).split_whitespace().collect::<Vec<_>>().join(" ");
                return Err(RegistryError::Protocol(format!("{}: manifest {r}: HTTP {code}: {detail}", r.registry)));
            }
        }
        let too_large = || RegistryError::TooLarge { what: format!("manifest {r}"), limit: MAX_MANIFEST_SIZE as u64 };
        if response.content_length().is_some_and(|n| n > MAX_MANIFEST_SIZE as u64) {
            return Err(too_large());
        }
        let digest = response
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = read_limited(&mut response, MAX_MANIFEST_SIZE).await.map_err(|e| match e {
            ReadLimited::TooLarge => too_large(),
            ReadLimited::Http(e) => RegistryError::Unreachable {
                registry: r.registry.clone(),
                reason: format!("reading manifest {r}: {}", chain(&e)),
            },
        })?;
        Ok((body, digest))
    }

    /// A plain HTTP client for `registry`, with the transport's timeouts (shared with
    /// oci-client's TLS stack: the same reqwest and rustls).
    fn http_for(&self, registry: &str) -> Result<reqwest::Client, RegistryError> {
        let mut clients = lock(&self.inner.http);
        if let Some(c) = clients.get(registry) {
            return Ok(c.clone());
        }
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| RegistryError::Protocol(format!("setting up the HTTP client for {registry}: {e}")))?;
        clients.insert(registry.to_string(), client.clone());
        Ok(client)
    }

    async fn session(
        &self,
        r: &Reference,
    ) -> Result<(oci_client::Client, oci_client::Reference, RegistryAuth), RegistryError> {
        let client = self.client_for(&r.registry)?;
        let oref = r.to_oci();
        let auth = lock(&self.inner.auths).get(&r.registry).cloned().unwrap_or(RegistryAuth::Anonymous);
        // oci-client only authenticates (and only fetches bearer tokens) for a registry whose
        // auth it has stored, anonymous included.
        client.store_auth_if_needed(oref.resolve_registry(), &auth).await;
        Ok((client, oref, auth))
    }

    /// Checks `user`/`password` against `registry` (`GET /v2/` with basic auth, then the token
    /// endpoint a bearer challenge names), then stores them in the auth file and in memory, as
    /// `docker login` does.
    pub async fn login(&self, registry: &str, user: &str, password: &str) -> Result<(), RegistryError> {
        let scheme = match transport_for(registry, &self.inner.insecure) {
            Transport::Https => "https",
            Transport::Http => "http",
        };
        let url = format!("{scheme}://{registry}/v2/");
        let http = self.http_for(registry)?;
        let unreachable =
            |e: reqwest::Error| RegistryError::Unreachable { registry: registry.to_string(), reason: chain(&e) };
        let response = http.get(&url).basic_auth(user, Some(password)).send().await.map_err(unreachable)?;
        let status = match (response.status().as_u16(), bearer_challenge(&response)) {
            (401, Some((realm, service))) => {
                let mut token_request = http.get(&realm).basic_auth(user, Some(password)).query(&[("account", user)]);
                if let Some(service) = service {
                    token_request = token_request.query(&[("service", service)]);
                }
                token_request.send().await.map_err(unreachable)?.status()
            }
            _ => response.status(),
        };
        if !status.is_success() {
            return Err(RegistryError::LoginFailed { url, status: status.to_string() });
        }
        self.store_auth(registry, Some((user, password)))
    }

    /// Forgets the credentials of `registry` (auth file and memory); whether there were any.
    pub fn logout(&self, registry: &str) -> Result<bool, RegistryError> {
        let known = lock(&self.inner.auths).contains_key(registry);
        self.store_auth(registry, None)?;
        Ok(known)
    }

    /// Sets (or with None removes) the `auths` entry of `registry` in the auth file, keeping
    /// everything else in it, and in memory.
    fn store_auth(&self, registry: &str, credentials: Option<(&str, &str)>) -> Result<(), RegistryError> {
        let path = self.inner.auth_file.clone().ok_or_else(|| RegistryError::AuthConfig {
            path: PathBuf::from("config.json"),
            reason: "no auth file: set --auth-file, $DOCKER_CONFIG or $HOME".to_string(),
        })?;
        let bad = |reason: String| RegistryError::AuthConfig { path: path.clone(), reason };
        let mut config: serde_json::Value = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
            Err(e) => return Err(bad(e.to_string())),
        };
        let auths = config
            .as_object_mut()
            .ok_or_else(|| bad("not a JSON object".to_string()))?
            .entry("auths")
            .or_insert_with(|| serde_json::json!({}));
        let auths = auths.as_object_mut().ok_or_else(|| bad("auths is not a JSON object".to_string()))?;
        auths.retain(|key, _| auth_key_registry(key) != registry);
        if let Some((user, password)) = credentials {
            let key = if registry == DOCKER_HUB { "https://index.docker.io/v1/" } else { registry };
            auths.insert(
                key.to_string(),
                serde_json::json!({ "auth": encode_base64(format!("{user}:{password}").as_bytes()) }),
            );
        }
        write_private(&path, &serde_json::to_vec_pretty(&config).map_err(|e| bad(e.to_string()))?)
            .map_err(|e| bad(e.to_string()))?;
        let mut memory = lock(&self.inner.auths);
        match credentials {
            Some((user, password)) => {
                memory.insert(registry.to_string(), RegistryAuth::Basic(user.into(), password.into()))
            }
            None => memory.remove(registry),
        };
        // The registry's client caches the credentials (and tokens) it was first given.
        lock(&self.inner.clients).remove(registry);
        Ok(())
    }

    fn client_for(&self, registry: &str) -> Result<oci_client::Client, RegistryError> {
        let mut clients = lock(&self.inner.clients);
        if let Some(c) = clients.get(registry) {
            return Ok(c.clone());
        }
        let protocol = match transport_for(registry, &self.inner.insecure) {
            Transport::Https => ClientProtocol::Https,
            Transport::Http => ClientProtocol::Http,
        };
        let config = ClientConfig {
            protocol,
            // berth picks the platform from an index itself.
            platform_resolver: None,
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            user_agent: USER_AGENT,
            ..ClientConfig::default()
        };
        let client = oci_client::Client::try_from(config)
            .map_err(|e| RegistryError::Protocol(format!("setting up the HTTP client for {registry}: {e}")))?;
        clients.insert(registry.to_string(), client.clone());
        Ok(client)
    }
}

/// The `realm` and `service` of a `WWW-Authenticate: Bearer …` challenge.
fn bearer_challenge(response: &reqwest::Response) -> Option<(String, Option<String>)> {
    let header = response.headers().get(reqwest::header::WWW_AUTHENTICATE)?.to_str().ok()?;
    let params = header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer "))?;
    let param = |name: &str| {
        params.split(',').find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then(|| v.trim_matches('"').to_string())
        })
    };
    Some((param("realm")?, param("service")))
}

/// Writes `bytes` to `path` (owner-only, created with its directory if need be) through a
/// temporary file, so a reader never sees half of it.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("config.json")));
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Standard base64 with padding.
fn encode_base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded maps stay consistent even if a holder panicked.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `source` as the stream of chunks oci-client uploads, checked to be exactly `size` bytes. A
/// read failure or wrong length is put in `failure` and ends the stream with an error.
/// `B` is oci-client's `bytes::Bytes`, which berthd does not name.
fn upload_chunks<R: AsyncRead + Unpin + Send + 'static, B: From<Vec<u8>> + Send + 'static>(
    source: R,
    size: u64,
    digest: Digest,
    failure: Arc<Mutex<Option<RegistryError>>>,
) -> impl futures::Stream<Item = Result<B, OciDistributionError>> + Send + 'static {
    futures::stream::try_unfold((source, 0u64), move |(mut source, sent)| {
        let (digest, failure) = (digest.clone(), Arc::clone(&failure));
        async move {
            let fail = |e: RegistryError| {
                let message = e.to_string();
                *lock(&failure) = Some(e);
                OciDistributionError::GenericError(Some(message))
            };
            let mut buf = Vec::with_capacity(PUSH_CHUNK.min(size - sent.min(size)) as usize);
            let n = (&mut source).take(PUSH_CHUNK).read_to_end(&mut buf).await.map_err(|source| {
                fail(RegistryError::Io { what: format!("reading blob {digest} to push it"), source })
            })? as u64;
            let sent_now = sent + n;
            if sent_now > size || (n == 0 && sent_now != size) {
                return Err(fail(RegistryError::SizeMismatch { digest, expected: size, actual: sent_now }));
            }
            if n == 0 {
                return Ok(None);
            }
            Ok(Some((B::from(buf), (source, sent_now))))
        }
    })
}

/// Maps an oci-client failure to what the user is told, naming the registry and the target.
fn classify(e: OciDistributionError, r: &Reference, target: Target<'_>) -> RegistryError {
    let registry = r.registry.clone();
    let not_found = |registry: String, detail: String| match target {
        Target::Manifest => RegistryError::ManifestUnknown { reference: r.to_string() },
        Target::Blob(d) => RegistryError::BlobUnknown { repository: r.name(), digest: d.clone() },
        Target::Upload(what) => RegistryError::Rejected { registry, what: what.to_string(), reason: detail },
    };
    match e {
        OciDistributionError::RequestError(re) => match re.status().map(|s| s.as_u16()) {
            Some(401 | 403) => RegistryError::Unauthorized { registry },
            Some(404) => not_found(registry, "not found".to_string()),
            _ if re.is_connect() || re.is_timeout() => RegistryError::Unreachable { registry, reason: chain(&re) },
            _ => RegistryError::Protocol(format!("{registry}: {}", chain(&re))),
        },
        OciDistributionError::UnauthorizedError { .. } | OciDistributionError::AuthenticationFailure(_) => {
            RegistryError::Unauthorized { registry }
        }
        OciDistributionError::RegistryError { envelope, .. } => {
            let has = |codes: &[OciErrorCode]| envelope.errors.iter().any(|e| codes.contains(&e.code));
            let detail = envelope_detail(&envelope);
            if has(&[OciErrorCode::Unauthorized, OciErrorCode::Denied]) {
                RegistryError::Unauthorized { registry }
            } else if has(&[
                OciErrorCode::ManifestUnknown,
                OciErrorCode::NameUnknown,
                OciErrorCode::NotFound,
                OciErrorCode::BlobUnknown,
            ]) {
                not_found(registry, detail)
            } else if let Target::Upload(what) = target {
                RegistryError::Rejected { registry, what: what.to_string(), reason: detail }
            } else {
                RegistryError::Protocol(format!("{registry}: {}: {detail}", describe(r, target)))
            }
        }
        OciDistributionError::ServerError { code, message, .. } => {
            // Upload failures come here with the registry's error envelope as the message.
            let detail = match serde_json::from_str::<OciEnvelope>(&message) {
                Ok(envelope) => envelope_detail(&envelope),
                Err(_) => message.split_whitespace().collect::<Vec<_>>().join(" "),
            };
            match (code, target) {
                (401 | 403, _) => RegistryError::Unauthorized { registry },
                (404, _) => not_found(registry, detail),
                (_, Target::Upload(what)) => RegistryError::Rejected {
                    registry,
                    what: what.to_string(),
                    reason: format!("HTTP {code}: {detail}"),
                },
                _ => RegistryError::Protocol(format!("{registry}: {}: HTTP {code}: {detail}", describe(r, target))),
            }
        }
        OciDistributionError::DigestError(OciDigestError::VerificationError { expected, actual }) => {
            RegistryError::DigestMismatch { what: describe(r, target), expected, actual }
        }
        other => RegistryError::Protocol(format!("{registry}: {}: {}", describe(r, target), chain(&other))),
    }
}

/// The registry's error messages (or codes, where it gave no message), `; `-separated.
fn envelope_detail(envelope: &OciEnvelope) -> String {
    let parts: Vec<String> = envelope
        .errors
        .iter()
        .map(|e| if e.message.is_empty() { format!("{:?}", e.code) } else { e.message.clone() })
        .collect();
    if parts.is_empty() {
        "no error detail".to_string()
    } else {
        parts.join("; ")
    }
}

/// A failure in the middle of a blob download: a digest mismatch found by oci-client's verifying
/// stream, or a broken transfer the caller can resume at `received`.
fn stream_error(e: std::io::Error, r: &Reference, digest: &Digest, received: u64) -> RegistryError {
    if let Some(OciDigestError::VerificationError { expected, actual }) =
        e.get_ref().and_then(|inner| inner.downcast_ref::<OciDigestError>())
    {
        return RegistryError::DigestMismatch {
            what: format!("blob {digest}"),
            expected: expected.clone(),
            actual: actual.clone(),
        };
    }
    RegistryError::Interrupted { registry: r.registry.clone(), digest: digest.clone(), received, reason: chain(&e) }
}

fn describe(r: &Reference, target: Target<'_>) -> String {
    match target {
        Target::Manifest => format!("manifest {r}"),
        Target::Blob(d) => format!("blob {d} of {}", r.name()),
        Target::Upload(what) => what.to_string(),
    }
}

/// `e` and its sources, `: `-separated, without repeats (reqwest repeats its inner message).
fn chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// The media type of a manifest or index: its `mediaType` field, or for an OCI document without
/// one, what its shape says (the registry's Content-Type is not trusted for this).
fn manifest_media_type(body: &[u8]) -> Result<String, String> {
    crate::image::sniff_media_type(body)
        .ok_or_else(|| "neither a manifest nor an index (not JSON, or no mediaType, config or manifests)".to_string())
}

/// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
fn default_auth_file() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/config.json"))
}

/// Credentials by registry from a docker `config.json` (`auths` only; credential helpers and
/// identity tokens are not supported). A missing file has none.
fn load_auths(path: &Path) -> Result<HashMap<String, RegistryAuth>, RegistryError> {
    #[derive(serde::Deserialize)]
    struct DockerConfig {
        #[serde(default)]
        auths: HashMap<String, AuthEntry>,
    }
    #[derive(serde::Deserialize)]
    struct AuthEntry {
        auth: Option<String>,
        username: Option<String>,
        password: Option<String>,
    }
    let bad = |reason: String| RegistryError::AuthConfig { path: path.to_path_buf(), reason };
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(bad(e.to_string())),
    };
    let config: DockerConfig = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    let mut auths = HashMap::new();
    for (key, entry) in config.auths {
        let (user, pass) = match (entry.auth.as_deref().filter(|a| !a.is_empty()), entry.username, entry.password) {
            (Some(encoded), _, _) => {
                let decoded = decode_base64(encoded)
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| bad(format!("the auth of {key:?} is not base64 of user:password")))?;
                let (u, p) = decoded
                    .split_once(':')
                    .ok_or_else(|| bad(format!("the auth of {key:?} is not base64 of user:password")))?;
                (u.to_string(), p.to_string())
            }
            (None, Some(u), Some(p)) => (u, p),
            _ => continue,
        };
        auths.insert(auth_key_registry(&key), RegistryAuth::Basic(user, pass));
    }
    Ok(auths)
}

/// The registry an `auths` key names: `host`, `https://host`, `https://host/v1/`; Docker Hub's
/// keys (`https://index.docker.io/v1/`, `registry-1.docker.io`) are `docker.io`.
pub fn auth_key_registry(key: &str) -> String {
    let rest = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    let host = rest.split('/').next().unwrap_or(rest);
    match host {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
        h => h.to_string(),
    }
}

/// Standard base64, padding optional; None if malformed.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim_end_matches('=').as_bytes();
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for group in s.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in group.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..group.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_loopback_and_insecure_registries() {
        let insecure = vec!["registry.lan:5000".to_string(), "10.0.0.7".to_string()];
        for (registry, want) in [
            ("localhost", Transport::Http),
            ("localhost:5000", Transport::Http),
            ("127.0.0.1:5000", Transport::Http),
            ("127.3.2.1", Transport::Http),
            ("[::1]:5000", Transport::Http),
            ("registry.lan:5000", Transport::Http),
            ("registry.lan:5001", Transport::Https),
            ("registry.lan", Transport::Https),
            ("10.0.0.7:443", Transport::Http),
            ("10.0.0.8:5000", Transport::Https),
            ("192.168.1.1:5000", Transport::Https),
            ("docker.io", Transport::Https),
            ("localhost.evil.com", Transport::Https),
            ("[::2]:5000", Transport::Https),
        ] {
            assert_eq!(transport_for(registry, &insecure), want, "{registry}");
        }
    }

    #[test]
    fn reads_docker_config_auths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths": {
                "https://index.docker.io/v1/": {"auth": "aHViOnNlY3JldA=="},
                "https://ghcr.io": {"auth": "Z2g6cDpx"},
                "localhost:5000": {"username": "u", "password": "p"},
                "empty.io": {}
            }, "credsStore": "desktop"}"#,
        )
        .expect("write");
        let auths = load_auths(&path).expect("load");
        assert_eq!(auths.get("docker.io"), Some(&RegistryAuth::Basic("hub".into(), "secret".into())));
        assert_eq!(auths.get("ghcr.io"), Some(&RegistryAuth::Basic("gh".into(), "p:q".into())));
        assert_eq!(auths.get("localhost:5000"), Some(&RegistryAuth::Basic("u".into(), "p".into())));
        assert_eq!(auths.len(), 3);
        assert!(load_auths(&dir.path().join("missing.json")).expect("missing is fine").is_empty());
        std::fs::write(&path, r#"{"auths": {"x.io": {"auth": "!!!"}}}"#).expect("write");
        assert!(matches!(load_auths(&path), Err(RegistryError::AuthConfig { .. })));
    }

    #[test]
    fn decodes_base64() {
        for (enc, dec) in [("", ""), ("YQ==", "a"), ("YWI=", "ab"), ("YWJj", "abc"), ("YWJjZA", "abcd")] {
            assert_eq!(decode_base64(enc).as_deref(), Some(dec.as_bytes()), "{enc}");
        }
        assert_eq!(decode_base64("Y"), None);
        assert_eq!(decode_base64("Y*=="), None);
    }

    #[test]
    fn media_type_from_manifest_body() {
        assert_eq!(manifest_media_type(br#"{"mediaType":"x/y","config":{}}"#).as_deref(), Ok("x/y"));
        assert_eq!(manifest_media_type(br#"{"manifests":[]}"#).as_deref(), Ok(OCI_IMAGE_INDEX_MEDIA_TYPE));
        assert_eq!(manifest_media_type(br#"{"config":{},"layers":[]}"#).as_deref(), Ok(OCI_IMAGE_MEDIA_TYPE));
        assert!(manifest_media_type(b"{}").is_err());
        assert!(manifest_media_type(b"<html>").is_err());
    }

    #[test]
    fn base64_encoding_round_trips_through_the_auth_file_decoder() {
        for text in ["", "u", "u:", "u:p", "alice:s3cret!", "\u{e9}t\u{e9}:x"] {
            let encoded = encode_base64(text.as_bytes());
            assert_eq!(decode_base64(&encoded).as_deref(), Some(text.as_bytes()), "{encoded}");
        }
        assert_eq!(encode_base64(b"u:p"), "dTpw");
        assert_eq!(encode_base64(b"user:pw"), "dXNlcjpwdw==");
    }

    #[test]
    fn stored_credentials_keep_the_rest_of_the_auth_file_and_logout_removes_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("docker/config.json");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let other = serde_json::json!({"auths": {"https://other.example/v1/": {"auth": "eDp5"}}, "credsStore": "none"});
        std::fs::write(&path, other.to_string()).expect("writing");
        let client = RegistryClient::new(RegistryOptions { auth_file: Some(path.clone()), ..Default::default() })
            .expect("client");

        client.store_auth("127.0.0.1:5000", Some(("u", "p"))).expect("storing");
        let written: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).expect("reading")).expect("json");
        assert_eq!(written["auths"]["127.0.0.1:5000"]["auth"], "dTpw");
        assert_eq!(written["auths"]["https://other.example/v1/"]["auth"], "eDp5");
        assert_eq!(written["credsStore"], "none");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777, 0o600);
        assert!(
            matches!(load_auths(&path).expect("loads").get("127.0.0.1:5000"), Some(RegistryAuth::Basic(u, p)) if u == "u" && p == "p")
        );

        assert!(client.logout("127.0.0.1:5000").expect("logout"));
        assert!(!client.logout("127.0.0.1:5000").expect("second logout"));
        let auths = load_auths(&path).expect("loads");
        assert!(!auths.contains_key("127.0.0.1:5000"));
        assert!(auths.contains_key("other.example"));
    }
}
