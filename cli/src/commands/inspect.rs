//! `berth image inspect`: Images.Inspect per argument, printed as docker's JSON array (RepoTags
//! and RepoDigests gather every name of the image ID, from Images.List).

use std::io::{self, Write};

use anyhow::Result;
use berth_proto::images::{GetImageRequest, ImageSummary, InspectImageResponse, ListImagesRequest};
use berth_proto::images_ttrpc::ImagesClient;
use serde::Serialize;
use serde_json::Value;

use crate::daemon::{ctx, not_found_as_no_such_image, print_error, AlreadyReported, Berthd, NoSuchImage};
use crate::humanize;
use crate::reference::FamiliarName;
use crate::resolve::{resolve, ImageArg};
use crate::template::Template;

/// Go's zero time, which docker shows for an image never tagged.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Display detailed information on one or more images.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Format output using a Go template ('{{.Id}}', '{{.Config.Cmd}}', '{{json .Config}}').
    #[arg(short, long)]
    format: Option<String>,
    /// NAME[:TAG|@DIGEST] or image ID (prefix).
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

/// docker's `image inspect` object, in docker's key order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectedImage {
    id: String,
    repo_tags: Vec<String>,
    repo_digests: Vec<String>,
    parent: String,
    comment: String,
    created: String,
    author: String,
    config: Value,
    architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
    os: String,
    size: i64,
    #[serde(rename = "RootFS")]
    root_fs: RootFs,
    metadata: Metadata,
    descriptor: TargetDescriptor,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct RootFs {
    #[serde(rename = "Type")]
    kind: String,
    layers: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Metadata {
    last_tag_time: String,
}

/// The image record's target, as docker (with the containerd image store) shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TargetDescriptor {
    media_type: String,
    digest: String,
    size: i64,
}

/// Prints the images found as one JSON array (or a `--format` line each), then an error line
/// for each one not found.
pub async fn run(berthd: &Berthd, args: &InspectArgs) -> Result<()> {
    let template = args.format.as_deref().map(Template::parse).transpose()?;
    let images = berthd.images();
    let listed = images.list(ctx(), &ListImagesRequest::default()).await?;
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for arg in &args.images {
        match inspect_one(&images, arg).await {
            Ok(response) => found.push(inspected(&response, &listed.images)),
            Err(err) => errors.push(err),
        }
    }
    let output = match &template {
        Some(template) => render_each(template, &found)?,
        None => {
            let mut json = Vec::new();
            let mut serializer = serde_json::Serializer::with_formatter(
                &mut json,
                serde_json::ser::PrettyFormatter::with_indent(b"    "),
            );
            found.serialize(&mut serializer)?;
            json.push(b'\n');
            json
        }
    };
    io::stdout().lock().write_all(&output)?;
    for err in &errors {
        print_error(err);
    }
    if !errors.is_empty() {
        return Err(AlreadyReported.into());
    }
    Ok(())
}

/// One line per image: `template` applied to its inspect object.
fn render_each(template: &Template, found: &[InspectedImage]) -> Result<Vec<u8>> {
    let mut out = String::new();
    for image in found {
        out.push_str(&template.render(&serde_json::to_value(image)?)?);
        out.push('\n');
    }
    Ok(out.into_bytes())
}

/// The inspect object of the image `arg` names (`listed` supplies its other names).
pub async fn image_object(images: &ImagesClient, arg: &str, listed: &[ImageSummary]) -> Result<InspectedImage> {
    let response = inspect_one(images, arg).await?;
    Ok(inspected(&response, listed))
}

/// The Images.Inspect answer for the image `arg` names (a name or an ID prefix).
pub async fn inspect_one(images: &ImagesClient, arg: &str) -> Result<InspectImageResponse> {
    let name = match resolve(images, arg).await? {
        ImageArg::Name(name) => name,
        ImageArg::Id { names, .. } => names.into_iter().next().ok_or_else(|| NoSuchImage(arg.to_string()))?,
    };
    let request = GetImageRequest { name, ..Default::default() };
    images.inspect(ctx(), &request).await.map_err(|err| not_found_as_no_such_image(err, arg))
}

fn inspected(response: &InspectImageResponse, listed: &[ImageSummary]) -> InspectedImage {
    let summary = response.summary.as_ref().cloned().unwrap_or_default();
    let image = summary.image.as_ref().cloned().unwrap_or_default();
    let target = image.target.as_ref().cloned().unwrap_or_default();
    let config: Value = serde_json::from_slice(&response.config).unwrap_or(Value::Null);
    let text = |key: &str| config.get(key).and_then(Value::as_str).map(str::to_string);
    let mut platform = response.platform.split('/');
    let (platform_os, platform_arch, platform_variant) = (platform.next(), platform.next(), platform.next());

    // Every name of this image ID (the inspected one included), with its target digest.
    let mut named: Vec<(String, String)> = listed
        .iter()
        .filter(|s| !summary.config_digest.is_empty() && s.config_digest == summary.config_digest)
        .filter_map(|s| s.image.as_ref())
        .map(|i| (i.name.clone(), i.target.as_ref().map(|t| t.digest.clone()).unwrap_or_default()))
        .collect();
    if !named.iter().any(|(name, _)| *name == image.name) {
        named.push((image.name.clone(), target.digest.clone()));
    }
    let (repo_tags, repo_digests) = repo_tags_and_digests(&named);

    let layers = if response.diff_ids.is_empty() {
        config
            .pointer("/rootfs/diff_ids")
            .and_then(Value::as_array)
            .map(|ids| ids.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    } else {
        response.diff_ids.clone()
    };
    InspectedImage {
        id: summary.config_digest.clone(),
        repo_tags,
        repo_digests,
        parent: String::new(),
        comment: text("comment").unwrap_or_default(),
        created: text("created").unwrap_or_default(),
        author: text("author").unwrap_or_default(),
        config: docker_config(config.get("config")),
        architecture: text("architecture").or(platform_arch.map(str::to_string)).unwrap_or_default(),
        variant: text("variant").or(platform_variant.map(str::to_string)),
        os: text("os").or(platform_os.map(str::to_string)).unwrap_or_default(),
        size: summary.size,
        root_fs: RootFs { kind: "layers".to_string(), layers },
        metadata: Metadata {
            last_tag_time: if image.updated_at > 0 {
                humanize::rfc3339(image.updated_at)
            } else {
                ZERO_TIME.to_string()
            },
        },
        descriptor: TargetDescriptor { media_type: target.media_type, digest: target.digest, size: target.size },
    }
}

/// The image's runtime config as docker shows it: its struct's fields that are never left out
/// (empty strings, false, null) filled in where the image's JSON has none.
fn docker_config(config: Option<&Value>) -> Value {
    let mut out = config.and_then(Value::as_object).cloned().unwrap_or_default();
    for key in ["Hostname", "Domainname", "User"] {
        out.entry(key).or_insert_with(|| Value::String(String::new()));
    }
    for key in ["AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin", "StdinOnce"] {
        out.entry(key).or_insert(Value::Bool(false));
    }
    for key in ["Env", "Cmd"] {
        out.entry(key).or_insert(Value::Null);
    }
    out.entry("Image").or_insert_with(|| Value::String(String::new()));
    out.entry("Volumes").or_insert(Value::Null);
    out.entry("WorkingDir").or_insert_with(|| Value::String(String::new()));
    for key in ["Entrypoint", "OnBuild", "Labels"] {
        out.entry(key).or_insert(Value::Null);
    }
    // Left out of docker's JSON when empty, but its templates read "" there.
    out.entry("StopSignal").or_insert_with(|| Value::String(String::new()));
    Value::Object(out)
}

/// docker's RepoTags (`busybox:latest`) and RepoDigests (`busybox@sha256:…`) from (name, target
/// digest) pairs, sorted and each once.
fn repo_tags_and_digests(named: &[(String, String)]) -> (Vec<String>, Vec<String>) {
    let mut tags = Vec::new();
    let mut digests = Vec::new();
    for (name, target_digest) in named {
        let familiar = FamiliarName::parse(name);
        if familiar.is_dangling() {
            continue;
        }
        if let Some(tag) = &familiar.tag {
            tags.push(format!("{}:{tag}", familiar.repository));
        }
        if let Some(digest) = familiar.digest.as_ref().or(Some(target_digest)).filter(|d| !d.is_empty()) {
            digests.push(format!("{}@{digest}", familiar.repository));
        }
    }
    for list in [&mut tags, &mut digests] {
        list.sort();
        list.dedup();
    }
    (tags, digests)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::images::Image;
    use berth_proto::types::Descriptor;

    #[test]
    fn repo_tags_and_digests_use_familiar_names() {
        let digest = format!("sha256:{}", "d".repeat(64));
        let named = [
            ("docker.io/library/busybox:latest".to_string(), digest.clone()),
            ("docker.io/library/busybox:1.36".to_string(), digest.clone()),
            (format!("docker.io/library/busybox@{digest}"), digest.clone()),
        ];
        let (tags, digests) = repo_tags_and_digests(&named);
        assert_eq!(tags, ["busybox:1.36", "busybox:latest"]);
        assert_eq!(digests, [format!("busybox@{digest}")]);
    }

    #[test]
    fn inspect_object_takes_platform_config_and_layers_from_the_image_config() {
        let config = r#"{"architecture":"amd64","os":"linux","created":"2024-01-02T03:04:05Z",
            "config":{"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:aa"]}}"#;
        let summary = ImageSummary {
            image: Some(Image {
                name: "docker.io/library/busybox:latest".to_string(),
                target: Some(Descriptor { digest: "sha256:dd".to_string(), size: 527, ..Default::default() }).into(),
                ..Default::default()
            })
            .into(),
            config_digest: "sha256:cc".to_string(),
            size: 4_261_000,
            ..Default::default()
        };
        let response = InspectImageResponse {
            summary: Some(summary).into(),
            platform: "linux/amd64".to_string(),
            config: config.as_bytes().to_vec(),
            ..Default::default()
        };
        let object = serde_json::to_value(inspected(&response, &[])).expect("serialises");
        assert_eq!(object["Id"], "sha256:cc");
        assert_eq!(object["RepoTags"], serde_json::json!(["busybox:latest"]));
        assert_eq!(object["RepoDigests"], serde_json::json!(["busybox@sha256:dd"]));
        assert_eq!(object["Created"], "2024-01-02T03:04:05Z");
        assert_eq!(object["Architecture"], "amd64");
        assert_eq!(object["Os"], "linux");
        assert_eq!(object["Config"]["Cmd"], serde_json::json!(["sh"]));
        assert_eq!(object["Config"]["WorkingDir"], "", "docker's empty fields are there");
        assert_eq!(object["Config"]["Entrypoint"], Value::Null);
        assert_eq!(object["RootFS"], serde_json::json!({"Type": "layers", "Layers": ["sha256:aa"]}));
        assert_eq!(object["Size"], 4_261_000);
        assert_eq!(object["Metadata"]["LastTagTime"], ZERO_TIME);
        assert!(object.get("Variant").is_none());
        let image = inspected(&response, &[]);
        let render = |format: &str| {
            String::from_utf8(render_each(&Template::parse(format).unwrap(), std::slice::from_ref(&image)).unwrap())
                .unwrap()
        };
        assert_eq!(render("{{.Id}}"), "sha256:cc\n");
        assert_eq!(render("{{.Config.Cmd}}"), "[sh]\n");
        assert_eq!(render("{{json .Config.Cmd}}"), "[\"sh\"]\n");
        assert_eq!(render("{{json .Config.StopSignal}}"), "\"\"\n");
    }
}
