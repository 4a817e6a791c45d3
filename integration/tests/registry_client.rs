//! berthd's registry client against a real registry (Debian's docker-registry on 127.0.0.1) into
//! which skopeo pushed the busybox image: manifests by tag and digest, blob streaming and resume,
//! push, and the errors a user sees (unknown tag, unreachable, unauthorized).

use berth_integration::engines::registry::{free_port, Registry};
use berthd::image::reference::Reference;
use berthd::image::registry::{
    transport_for, BlobFetch, BlobPush, Fetched, RegistryClient, RegistryError, RegistryOptions, Transport,
};
use berthd::store::digest::Digest;
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A client that reads credentials only from `auth_file` (never root's own docker config).
fn client(auth_file: &Path) -> RegistryClient {
    RegistryClient::new(RegistryOptions { insecure: Vec::new(), auth_file: Some(auth_file.to_path_buf()) })
        .expect("registry client")
}

/// A client with no credentials at all.
fn anonymous_client(dir: &tempfile::TempDir) -> RegistryClient {
    client(&dir.path().join("no-config.json"))
}

fn reference(s: &str) -> Reference {
    Reference::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

/// A descriptor's digest and size.
fn descriptor(v: &Value) -> (Digest, u64) {
    let digest = v["digest"].as_str().expect("descriptor digest").parse().expect("valid digest");
    (digest, v["size"].as_u64().expect("descriptor size"))
}

/// The config and first layer descriptors of an image manifest.
fn config_and_layer(manifest: &Fetched) -> ((Digest, u64), (Digest, u64)) {
    let v: Value = serde_json::from_slice(&manifest.bytes).expect("manifest JSON");
    (descriptor(&v["config"]), descriptor(&v["layers"][0]))
}

/// Fetches a whole blob into memory (small test blobs only), checking the progress reports.
async fn fetch_all(client: &RegistryClient, r: &Reference, digest: &Digest, size: u64) -> Vec<u8> {
    let mut sink = Vec::new();
    let last = AtomicU64::new(0);
    let fetch = client
        .fetch_blob(r, digest, size, 0, &mut sink, &|held| last.store(held, Ordering::SeqCst))
        .await
        .unwrap_or_else(|e| panic!("fetch_blob {digest}: {e}"));
    assert_eq!(fetch, BlobFetch { written: size, range_honoured: true });
    assert_eq!(last.load(Ordering::SeqCst), size, "progress did not reach the blob's size");
    sink
}

/// A registry holding busybox:latest, an anonymous client, the image's reference and the
/// manifest's config and first layer descriptors.
/// `_registry` must be bound (not `..`) where it is destructured: it stops the registry on drop.
struct Busybox {
    _registry: Registry,
    dir: tempfile::TempDir,
    client: RegistryClient,
    r: Reference,
    config: (Digest, u64),
    layer: (Digest, u64),
}

async fn busybox_in_a_registry() -> Busybox {
    let registry = Registry::start();
    registry.push_busybox();
    let dir = tempfile::tempdir().expect("tempdir");
    let client = anonymous_client(&dir);
    let r = reference(&format!("{}/busybox:latest", registry.host()));
    let manifest = client.fetch_manifest(&r).await.expect("manifest");
    let (config, layer) = config_and_layer(&manifest);
    Busybox { _registry: registry, dir, client, r, config, layer }
}

#[tokio::test]
async fn manifest_by_tag_and_by_digest_is_what_skopeo_pushed() {
    let registry = Registry::start();
    let pushed = registry.push_busybox();
    let dir = tempfile::tempdir().expect("tempdir");
    let client = anonymous_client(&dir);

    let by_tag = client
        .fetch_manifest(&reference(&format!("{}/busybox:latest", registry.host())))
        .await
        .expect("manifest by tag");
    assert_eq!(by_tag.digest.to_string(), pushed);
    assert_eq!(Digest::sha256(&by_tag.bytes), by_tag.digest);
    assert_eq!(by_tag.media_type, OCI_MANIFEST);

    let by_digest =
        client.fetch_manifest(&reference(&format!("{}/busybox@{pushed}", registry.host()))).await.expect("by digest");
    assert_eq!(by_digest, by_tag);
}

#[tokio::test]
async fn config_and_layer_blobs_arrive_with_their_digests() {
    let Busybox { _registry, client, r, config: (config, config_size), layer: (layer, layer_size), .. } =
        busybox_in_a_registry().await;

    let config_bytes = fetch_all(&client, &r, &config, config_size).await;
    assert_eq!(Digest::sha256(&config_bytes), config);
    let config_json: Value = serde_json::from_slice(&config_bytes).expect("config JSON");
    assert_eq!(config_json["os"], "linux");

    let layer_bytes = fetch_all(&client, &r, &layer, layer_size).await;
    assert_eq!(layer_bytes.len() as u64, layer_size);
    assert_eq!(Digest::sha256(&layer_bytes), layer);
}

#[tokio::test]
async fn resumed_download_gives_exactly_the_remaining_bytes() {
    let Busybox { _registry, dir, client, r, layer: (layer, size), .. } = busybox_in_a_registry().await;
    let whole = fetch_all(&client, &r, &layer, size).await;

    // Resume into a file that holds the first part, as the content store's ingest would.
    let offset = size / 2 + 1;
    let path = dir.path().join("partial");
    std::fs::write(&path, &whole[..offset as usize]).expect("writing the partial blob");
    let mut file = tokio::fs::OpenOptions::new().append(true).open(&path).await.expect("opening the partial blob");
    let seen = AtomicU64::new(0);
    let fetch = client
        .fetch_blob(&r, &layer, size, offset, &mut file, &|held| seen.store(held, Ordering::SeqCst))
        .await
        .expect("resumed fetch");
    drop(file);
    assert_eq!(fetch, BlobFetch { written: size - offset, range_honoured: true });
    assert_eq!(seen.load(Ordering::SeqCst), size);
    let resumed = std::fs::read(&path).expect("reading the resumed blob");
    assert!(resumed == whole, "resumed blob differs from the whole one");
    assert_eq!(Digest::sha256(&resumed), layer);

    let mut nothing = Vec::new();
    let done = client.fetch_blob(&r, &layer, size, size, &mut nothing, &|_| {}).await.expect("offset == size");
    assert_eq!((done.written, nothing.len()), (0, 0));
    let beyond = client.fetch_blob(&r, &layer, size, size + 1, &mut nothing, &|_| {}).await;
    assert!(matches!(beyond, Err(RegistryError::BadOffset { .. })), "{beyond:?}");
}

#[tokio::test]
async fn blob_exists_tells_present_from_absent() {
    let Busybox { _registry, client, r, config: (config, _), layer: (layer, _), .. } = busybox_in_a_registry().await;

    assert!(client.blob_exists(&r, &config).await.expect("HEAD config"));
    assert!(client.blob_exists(&r, &layer).await.expect("HEAD layer"));
    let absent = Digest::sha256(b"not in this registry");
    assert!(!client.blob_exists(&r, &absent).await.expect("HEAD absent"));
    let mut sink = Vec::new();
    let fetched = client.fetch_blob(&r, &absent, 10, 0, &mut sink, &|_| {}).await;
    assert!(matches!(fetched, Err(RegistryError::BlobUnknown { .. })), "{fetched:?}");
}

#[tokio::test]
async fn pushed_blobs_and_manifest_fetch_back_with_identical_digests() {
    let registry = Registry::start();
    let original = registry.push_busybox();
    let dir = tempfile::tempdir().expect("tempdir");
    let client = anonymous_client(&dir);
    let source = reference(&format!("{}/busybox:latest", registry.host()));
    let manifest = client.fetch_manifest(&source).await.expect("manifest");
    let ((config, config_size), (layer, layer_size)) = config_and_layer(&manifest);
    let config_bytes = fetch_all(&client, &source, &config, config_size).await;
    let layer_path = dir.path().join("layer");
    std::fs::write(&layer_path, fetch_all(&client, &source, &layer, layer_size).await).expect("writing the layer");

    let copy = reference(&format!("{}/copies/busybox:v1", registry.host()));
    assert!(!client.blob_exists(&copy, &layer).await.expect("HEAD in the new repository"));
    let pushed = client
        .push_blob(&copy, &config, config_size, std::io::Cursor::new(config_bytes))
        .await
        .expect("pushing the config");
    assert_eq!(pushed, BlobPush::Uploaded);
    let layer_file = tokio::fs::File::open(&layer_path).await.expect("opening the layer");
    let pushed = client.push_blob(&copy, &layer, layer_size, layer_file).await.expect("pushing the layer from a file");
    assert_eq!(pushed, BlobPush::Uploaded);
    let layer_file = tokio::fs::File::open(&layer_path).await.expect("opening the layer");
    let again = client.push_blob(&copy, &layer, layer_size, layer_file).await.expect("pushing the layer again");
    assert_eq!(again, BlobPush::AlreadyExists);

    let digest = client.push_manifest(&copy, &manifest.media_type, manifest.bytes.clone()).await.expect("manifest");
    assert_eq!(digest.to_string(), original);
    let back = client.fetch_manifest(&copy).await.expect("fetching the pushed manifest");
    assert_eq!(back, manifest);
    assert_eq!(registry.digest_of("copies/busybox:v1"), original);

    // A blob larger than one upload chunk (4 MiB) goes up in several requests.
    let big: Vec<u8> = (0..9 * 1024 * 1024 + 7).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let big_digest = Digest::sha256(&big);
    let size = big.len() as u64;
    let pushed = client.push_blob(&copy, &big_digest, size, std::io::Cursor::new(big.clone())).await.expect("big push");
    assert_eq!(pushed, BlobPush::Uploaded);
    let back = fetch_all(&client, &copy, &big_digest, size).await;
    assert!(back == big, "the big blob came back different");
}

#[tokio::test]
async fn pushing_a_blob_under_the_wrong_digest_or_size_fails() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let client = anonymous_client(&dir);
    let r = reference(&format!("{}/wrong/blob:latest", registry.host()));
    let data = b"some content".to_vec();
    let wrong = Digest::sha256(b"other content");
    let pushed = client.push_blob(&r, &wrong, data.len() as u64, std::io::Cursor::new(data.clone())).await;
    assert!(matches!(pushed, Err(RegistryError::Rejected { .. })), "{pushed:?}");
    let right = Digest::sha256(&data);
    let short = client.push_blob(&r, &right, data.len() as u64 + 1, std::io::Cursor::new(data)).await;
    assert!(matches!(short, Err(RegistryError::SizeMismatch { .. })), "{short:?}");
}

#[tokio::test]
async fn unknown_tag_and_repository_are_manifest_unknown() {
    let registry = Registry::start();
    registry.push_busybox();
    let dir = tempfile::tempdir().expect("tempdir");
    let client = anonymous_client(&dir);
    for name in ["busybox:no-such-tag", "no/such-repo:latest"] {
        let r = reference(&format!("{}/{name}", registry.host()));
        let err = client.fetch_manifest(&r).await.expect_err("unknown manifest fetched");
        assert!(matches!(&err, RegistryError::ManifestUnknown { reference } if *reference == r.to_string()), "{err:?}");
        assert_eq!(err.to_string(), format!("manifest unknown: {r}"));
    }
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let client = anonymous_client(&dir);
    let r = reference(&format!("127.0.0.1:{port}/busybox:latest"));
    let err = client.fetch_manifest(&r).await.expect_err("fetched from a closed port");
    assert!(
        matches!(&err, RegistryError::Unreachable { registry, .. } if *registry == format!("127.0.0.1:{port}")),
        "{err:?}"
    );
    assert!(err.to_string().contains("onnection refused"), "{err}");
}

#[tokio::test]
async fn auth_registry_needs_credentials_from_config_json() {
    let registry = Registry::start_with_auth("berth", "s3cret");
    let pushed = registry.push_busybox();
    let dir = tempfile::tempdir().expect("tempdir");
    let r = reference(&format!("{}/busybox:latest", registry.host()));

    let anonymous = anonymous_client(&dir);
    let err = anonymous.fetch_manifest(&r).await.expect_err("fetched without credentials");
    assert!(matches!(&err, RegistryError::Unauthorized { registry: h } if *h == registry.host()), "{err:?}");
    let config = Digest::sha256(b"anything");
    let err = anonymous.blob_exists(&r, &config).await.expect_err("HEAD without credentials");
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");

    // base64("berth:s3cret"), under the key forms docker writes.
    for key in [registry.host(), format!("http://{}", registry.host())] {
        let auth_file = dir.path().join("config.json");
        std::fs::write(&auth_file, format!(r#"{{"auths": {{"{key}": {{"auth": "YmVydGg6czNjcmV0"}}}}}}"#))
            .expect("writing config.json");
        let client = client(&auth_file);
        let manifest = client.fetch_manifest(&r).await.unwrap_or_else(|e| panic!("with key {key}: {e}"));
        assert_eq!(manifest.digest.to_string(), pushed);
        let ((config, config_size), _) = config_and_layer(&manifest);
        let bytes = fetch_all(&client, &r, &config, config_size).await;
        assert_eq!(Digest::sha256(&bytes), config);
    }

    let wrong = dir.path().join("wrong.json");
    std::fs::write(
        &wrong,
        format!(r#"{{"auths": {{"{}": {{"username": "berth", "password": "nope"}}}}}}"#, registry.host()),
    )
    .expect("writing config.json");
    let err = client(&wrong).fetch_manifest(&r).await.expect_err("fetched with a wrong password");
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");

    // Pushing with credentials works too.
    let auth_file = dir.path().join("config.json");
    let client = client(&auth_file);
    let data = b"pushed with credentials".to_vec();
    let digest = Digest::sha256(&data);
    let target = reference(&format!("{}/pushed/blob:latest", registry.host()));
    let pushed = client.push_blob(&target, &digest, data.len() as u64, std::io::Cursor::new(data)).await.expect("push");
    assert_eq!(pushed, BlobPush::Uploaded);
    assert!(client.blob_exists(&target, &digest).await.expect("HEAD"));
}

#[test]
fn plain_http_is_refused_for_non_loopback_registries_unless_insecure() {
    assert_eq!(transport_for("127.0.0.1:5000", &[]), Transport::Http);
    assert_eq!(transport_for("localhost:5000", &[]), Transport::Http);
    assert_eq!(transport_for("10.1.2.3:5000", &[]), Transport::Https);
    assert_eq!(transport_for("registry.example:5000", &[]), Transport::Https);
    let insecure = vec!["10.1.2.3:5000".to_string()];
    assert_eq!(transport_for("10.1.2.3:5000", &insecure), Transport::Http);
    assert_eq!(transport_for("10.1.2.3:5001", &insecure), Transport::Https);
}

#[tokio::test]
async fn a_non_loopback_registry_gets_plain_http_only_when_listed_insecure() {
    let Some(ip) = non_loopback_ip() else {
        eprintln!("no non-loopback IPv4 address on this host; the transport unit test covers the rule");
        return;
    };
    let registry = Registry::start();
    let pushed = registry.push_busybox();
    // The registry listens on 127.0.0.1 only: reach it through a forwarder on a non-loopback
    // address, which the client must treat as a remote registry.
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.expect("binding the forwarder");
    let remote = format!("{ip}:{}", listener.local_addr().expect("forwarder address").port());
    let upstream = registry.host();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    let r = reference(&format!("{remote}/busybox:latest"));
    let dir = tempfile::tempdir().expect("tempdir");

    let err = anonymous_client(&dir).fetch_manifest(&r).await.expect_err("plain HTTP used for a remote registry");
    assert!(matches!(err, RegistryError::Unreachable { .. } | RegistryError::Protocol(_)), "{err:?}");

    let insecure = RegistryClient::new(RegistryOptions {
        insecure: vec![remote.clone()],
        auth_file: Some(dir.path().join("no-config.json")),
    })
    .expect("client");
    let manifest = insecure.fetch_manifest(&r).await.expect("manifest over plain HTTP from an insecure registry");
    assert_eq!(manifest.digest.to_string(), pushed);
}

/// A non-loopback IPv4 address of this host, from the route to a documentation address (no
/// packet is sent: connecting a UDP socket only picks the source address).
fn non_loopback_ip() -> Option<std::net::Ipv4Addr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    match socket.local_addr().ok()?.ip() {
        std::net::IpAddr::V4(ip) if !ip.is_loopback() && !ip.is_unspecified() => Some(ip),
        _ => None,
    }
}

/// A hostile "registry" on 127.0.0.1 that answers `/v2/` and then serves every manifest request
/// an endless body (with a huge Content-Length if `declare`, else none, closing to end it).
/// Returns its host:port and how many body bytes it managed to send.
fn endless_manifest_server(declare: bool) -> (String, std::sync::Arc<AtomicU64>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding");
    let host = listener.local_addr().expect("local_addr").to_string();
    let sent = std::sync::Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    return;
                }
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let mut conn = conn;
                if !request_line.contains("/manifests/") {
                    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
                    return;
                }
                let head = if declare {
                    "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 1073741824\r\n\r\n"
                } else {
                    "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n"
                };
                if conn.write_all(head.as_bytes()).is_err() {
                    return;
                }
                let chunk = vec![b' '; 64 << 10];
                // At most 1 GiB, so a client that never stops reading still ends the test.
                for _ in 0..(1 << 14) {
                    if conn.write_all(&chunk).is_err() {
                        return;
                    }
                    counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
            });
        }
    });
    (host, sent)
}

#[tokio::test]
async fn an_endless_manifest_is_refused_after_the_size_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let client = anonymous_client(&dir);
    for declare in [true, false] {
        let (host, sent) = endless_manifest_server(declare);
        let got = client.fetch_manifest(&reference(&format!("{host}/hostile:latest"))).await;
        assert!(matches!(got, Err(RegistryError::TooLarge { .. })), "declare={declare}: {got:?}");
        // The client stopped reading near the 4 MiB limit (socket buffers let the server get
        // somewhat further), far from the 1 GiB it offered.
        let sent = sent.load(Ordering::Relaxed);
        assert!(sent < 64 << 20, "declare={declare}: the server sent {sent} bytes before the client gave up");
    }
}
