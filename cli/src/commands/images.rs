//! `berth images`: Images.List as docker's table, IDs (`-q`), JSON lines or Go templates
//! (`--format`), narrowed by `--filter` (dangling, reference, label, before, since).

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};

use anyhow::{bail, Result};
use berth_proto::images::{ImageSummary, ListImagesRequest};
use serde_json::{json, Value};

use crate::commands::listing;
use crate::daemon::{ctx, Berthd, NoSuchImage};
use crate::humanize;
use crate::reference::{parse_id_prefix, short_id, FamiliarName};

/// What docker shows for a missing tag or digest.
const NONE: &str = "<none>";
/// Precision docker's `images` gives sizes.
const SIZE_PRECISION: usize = 3;
/// docker's default `images` table (with `--digests`, DIGEST after TAG).
const DEFAULT_TABLE: &str = "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
const DIGESTS_TABLE: &str = "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";

/// List images.
#[derive(clap::Args, Debug, Default)]
pub struct ImagesArgs {
    /// Only show image IDs (each once).
    #[arg(short, long)]
    quiet: bool,
    /// Show all images (berth keeps no intermediate images, so this is the default listing).
    #[arg(short, long)]
    all: bool,
    /// Show digests.
    #[arg(long)]
    digests: bool,
    /// Don't truncate output (full `sha256:` image IDs).
    #[arg(long)]
    no_trunc: bool,
    /// Filter output: dangling=true|false, reference=PATTERN, label=KEY[=VALUE], before=IMAGE,
    /// since=IMAGE.
    #[arg(short, long = "filter", value_name = "FILTER")]
    filters: Vec<String>,
    /// Format output: table, json, 'table TEMPLATE' or a Go template ('{{.Repository}}:{{.Tag}}').
    #[arg(long)]
    format: Option<String>,
    /// Only images of this repository (and tag): `busybox`, `busybox:1.36`.
    repository: Option<String>,
}

/// One line of the listing: an image name with what berthd resolved for this host.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ImageRow {
    repository: String,
    tag: String,
    digest: String,
    /// The full image ID (`sha256:<hex>` config digest).
    id: String,
    /// The image's own creation time (its config's `created`), Unix nanoseconds; 0 if unknown.
    created: i64,
    size: i64,
    /// No name of this image ID has a tag (docker's `<none>:<none>`).
    dangling: bool,
    labels: BTreeMap<String, String>,
}

/// Lists images in the requested form.
pub async fn run(berthd: &Berthd, args: &ImagesArgs) -> Result<()> {
    let filters = Filters::parse(&args.filters)?;
    let listed = berthd.images().list(ctx(), &ListImagesRequest::default()).await?;
    let all_rows = rows(&listed.images, args.repository.as_deref());
    let bounds = filters.creation_bounds(&all_rows)?;
    let rows: Vec<ImageRow> = all_rows.iter().filter(|row| filters.matches(row, bounds)).cloned().collect();
    let output = render(&rows, args, humanize::now_nanos())?;
    io::stdout().lock().write_all(output.as_bytes())?;
    Ok(())
}

/// The lines `images` prints for `rows` with `args`' output options.
fn render(rows: &[ImageRow], args: &ImagesArgs, now: i64) -> Result<String> {
    if args.quiet {
        return Ok(unique_ids(rows, args.no_trunc).iter().map(|id| format!("{id}\n")).collect());
    }
    let values: Vec<Value> = rows.iter().map(|row| row_value(row, now, args.no_trunc)).collect();
    let default_table = if args.digests { DIGESTS_TABLE } else { DEFAULT_TABLE };
    let format = match args.format.as_deref() {
        // `{{json .}}` is docker's spelling of one object per line.
        Some("{{json .}}") => Some("json"),
        other => other,
    };
    listing::render(&values, format, default_table, &headers())
}

/// The image's own creation time from the config's `created` (RFC 3339), else when the record
/// was stored.
fn image_created(summary: &ImageSummary, stored_at: i64) -> i64 {
    chrono::DateTime::parse_from_rfc3339(&summary.image_created)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .unwrap_or(stored_at)
}

/// Rows newest first (then by name), keeping those `filter` (`REPOSITORY[:TAG]`) selects.
fn rows(summaries: &[ImageSummary], filter: Option<&str>) -> Vec<ImageRow> {
    let filter = filter.map(FamiliarName::parse);
    let tagged_ids: HashSet<&str> = summaries
        .iter()
        .filter(|s| s.image.as_ref().is_some_and(|i| FamiliarName::parse(&i.name).tag.is_some()))
        .map(|s| s.config_digest.as_str())
        .collect();
    let mut rows: Vec<ImageRow> = summaries
        .iter()
        .filter_map(|summary| {
            let image = summary.image.as_ref()?;
            let name = FamiliarName::parse(&image.name);
            if let Some(filter) = &filter {
                let tag_matches = filter.tag.is_none() || filter.tag == name.tag;
                if filter.repository != name.repository || !tag_matches {
                    return None;
                }
            }
            let target_digest = image.target.as_ref().map(|t| t.digest.clone()).filter(|d| !d.is_empty());
            if name.is_dangling() {
                return Some(ImageRow {
                    repository: NONE.to_string(),
                    tag: NONE.to_string(),
                    digest: NONE.to_string(),
                    id: summary.config_digest.clone(),
                    created: image_created(summary, image.created_at),
                    size: summary.size,
                    dangling: true,
                    labels: summary.config_labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                });
            }
            Some(ImageRow {
                repository: name.repository,
                tag: name.tag.unwrap_or_else(|| NONE.to_string()),
                digest: name.digest.or(target_digest).unwrap_or_else(|| NONE.to_string()),
                id: summary.config_digest.clone(),
                created: image_created(summary, image.created_at),
                size: summary.size,
                dangling: !tagged_ids.contains(summary.config_digest.as_str()),
                labels: summary.config_labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            })
        })
        .collect();
    rows.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| (&a.repository, &a.tag).cmp(&(&b.repository, &b.tag))));
    rows
}

/// IDs in row order, each once.
fn unique_ids(rows: &[ImageRow], no_trunc: bool) -> Vec<&str> {
    let mut seen = HashSet::new();
    rows.iter().map(|row| shown_id(&row.id, no_trunc)).filter(|id| seen.insert(*id)).collect()
}

fn shown_id(id: &str, no_trunc: bool) -> &str {
    if no_trunc {
        id
    } else {
        short_id(id)
    }
}

/// docker's image formatter object for a row (also its `--format json` line; keys in docker's
/// alphabetical order).
fn row_value(row: &ImageRow, now: i64, no_trunc: bool) -> Value {
    let size = humanize::size(row.size, SIZE_PRECISION);
    json!({
        "Containers": "N/A",
        "CreatedAt": humanize::utc_timestamp(row.created),
        "CreatedSince": humanize::since(row.created, now),
        "Digest": row.digest,
        "ID": shown_id(&row.id, no_trunc),
        "Repository": row.repository,
        "SharedSize": "N/A",
        "Size": size,
        "Tag": row.tag,
        "UniqueSize": "N/A",
        "VirtualSize": size,
    })
}

/// The header of each field, as docker names them.
fn headers() -> Value {
    json!({
        "Containers": "CONTAINERS", "CreatedAt": "CREATED AT", "CreatedSince": "CREATED", "Digest": "DIGEST",
        "ID": "IMAGE ID", "Repository": "REPOSITORY", "SharedSize": "SHARED SIZE", "Size": "SIZE", "Tag": "TAG",
        "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE",
    })
}

/// `--filter`s: values of one key are alternatives, different keys must all match.
#[derive(Debug, Default)]
struct Filters {
    by_key: BTreeMap<String, Vec<String>>,
}

/// Only images created strictly between these (Unix nanoseconds), from `since=`/`before=`.
type CreationBounds = (Option<i64>, Option<i64>);

impl Filters {
    fn parse(filters: &[String]) -> Result<Filters> {
        let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for filter in filters {
            let Some((key, value)) = filter.split_once('=') else {
                bail!("bad format of filter (expected name=value): {filter}");
            };
            match key {
                "dangling" if !matches!(value.to_ascii_lowercase().as_str(), "true" | "false" | "1" | "0") => {
                    bail!("invalid filter 'dangling={value}'")
                }
                "dangling" | "reference" | "label" | "before" | "since" => {}
                _ => bail!("invalid filter '{key}'"),
            }
            by_key.entry(key.to_string()).or_default().push(value.to_string());
        }
        Ok(Filters { by_key })
    }

    /// The creation times of the images `since=` (latest) and `before=` (earliest) name.
    fn creation_bounds(&self, rows: &[ImageRow]) -> Result<CreationBounds> {
        let created = |key: &str| -> Result<Vec<i64>> {
            let values = self.by_key.get(key).map(Vec::as_slice).unwrap_or_default();
            values.iter().map(|value| named_row(rows, value).map(|row| row.created)).collect()
        };
        Ok((created("since")?.into_iter().max(), created("before")?.into_iter().min()))
    }

    fn matches(&self, row: &ImageRow, (after, before): CreationBounds) -> bool {
        let any =
            |key: &str, test: &dyn Fn(&str) -> bool| self.by_key.get(key).is_none_or(|v| v.iter().any(|v| test(v)));
        after.is_none_or(|t| row.created > t)
            && before.is_none_or(|t| row.created < t)
            && any("dangling", &|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1") == row.dangling)
            && any("reference", &|pattern| {
                listing::glob_matches(pattern, &row.repository)
                    || listing::glob_matches(pattern, &format!("{}:{}", row.repository, row.tag))
            })
            && self.by_key.get("label").is_none_or(|labels| {
                labels.iter().all(|label| match label.split_once('=') {
                    Some((k, v)) => row.labels.get(k).is_some_and(|have| have == v),
                    None => row.labels.contains_key(label),
                })
            })
    }
}

/// The row an image argument names: `busybox[:tag]` (familiar or normalised) or an ID prefix.
fn named_row<'a>(rows: &'a [ImageRow], arg: &str) -> Result<&'a ImageRow> {
    let name = FamiliarName::parse(arg);
    let tag = name.tag.clone().unwrap_or_else(|| "latest".to_string());
    let by_name = rows.iter().find(|row| row.repository == name.repository && row.tag == tag);
    let by_id = || {
        let prefix = parse_id_prefix(arg)?;
        rows.iter().find(|row| row.id.strip_prefix("sha256:").is_some_and(|hex| hex.starts_with(prefix.hex)))
    };
    by_name.or_else(by_id).ok_or_else(|| NoSuchImage(arg.to_string()).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::images::Image;
    use berth_proto::types::Descriptor;

    const SECOND: i64 = 1_000_000_000;

    /// An image stored at `stored_s` whose config says it was created at `created_s`.
    fn summary(name: &str, id_hex: char, created_s: i64, size: i64) -> ImageSummary {
        ImageSummary {
            image: Some(Image {
                name: name.to_string(),
                target: Some(Descriptor { digest: format!("sha256:{}", "d".repeat(64)), ..Default::default() }).into(),
                created_at: 1_700_000_000 * SECOND,
                ..Default::default()
            })
            .into(),
            config_digest: format!("sha256:{}", id_hex.to_string().repeat(64)),
            size,
            image_created: humanize::rfc3339(created_s * SECOND),
            ..Default::default()
        }
    }

    fn listing() -> Vec<ImageSummary> {
        let mut app = summary("ghcr.io/o/app:v1", 'b', 2000, 77_800_000);
        app.config_labels.insert("tier".to_string(), "web".to_string());
        vec![
            summary("docker.io/library/busybox:latest", 'a', 1000, 4_261_000),
            summary(&format!("docker.io/library/busybox@sha256:{}", "d".repeat(64)), 'a', 1000, 4_261_000),
            app,
            summary(&format!("docker.io/library/old@sha256:{}", "d".repeat(64)), 'c', 500, 1_000),
        ]
    }

    fn args(format: Option<&str>) -> ImagesArgs {
        ImagesArgs { format: format.map(str::to_string), ..Default::default() }
    }

    fn filtered(filters: &[&str]) -> Vec<String> {
        let filters = Filters::parse(&filters.iter().map(|f| f.to_string()).collect::<Vec<_>>()).expect("parses");
        let rows = rows(&listing(), None);
        let bounds = filters.creation_bounds(&rows).expect("bounds");
        rows.iter().filter(|r| filters.matches(r, bounds)).map(|r| format!("{}:{}", r.repository, r.tag)).collect()
    }

    #[test]
    fn table_shows_familiar_names_short_ids_image_creation_ages_and_sizes_newest_first() {
        let now = (2000 + 2 * 3600) * SECOND;
        let table = render(&rows(&listing()[..3], None), &args(None), now).unwrap();
        let expected = "\
REPOSITORY      TAG       IMAGE ID       CREATED       SIZE
ghcr.io/o/app   v1        bbbbbbbbbbbb   2 hours ago   77.8MB
busybox         <none>    aaaaaaaaaaaa   2 hours ago   4.26MB
busybox         latest    aaaaaaaaaaaa   2 hours ago   4.26MB
";
        assert_eq!(table, expected);
    }

    #[test]
    fn created_is_the_config_creation_time_not_when_the_image_was_stored() {
        let now = 3 * 365 * 86_400 * SECOND;
        let rows = rows(&listing()[..1], None);
        assert_eq!(rows[0].created, 1000 * SECOND);
        assert!(render(&rows, &args(None), now).unwrap().contains("2 years ago"));
        let mut unknown = listing()[0].clone();
        unknown.image_created.clear();
        assert_eq!(super::rows(&[unknown], None)[0].created, 1_700_000_000 * SECOND);
    }

    #[test]
    fn digest_column_shows_the_pinned_or_target_digest() {
        let table =
            render(&rows(&listing(), Some("busybox:latest")), &ImagesArgs { digests: true, ..Default::default() }, 0)
                .unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("REPOSITORY   TAG       DIGEST"));
        assert!(lines[1].contains(&format!("sha256:{}", "d".repeat(64))));
    }

    #[test]
    fn repository_filter_matches_familiar_names_with_optional_tag() {
        assert_eq!(rows(&listing(), Some("busybox")).len(), 2);
        assert_eq!(rows(&listing(), Some("docker.io/library/busybox:latest")).len(), 1);
        assert_eq!(rows(&listing(), Some("ghcr.io/o/app")).len(), 1);
        assert!(rows(&listing(), Some("alpine")).is_empty());
    }

    #[test]
    fn quiet_lists_each_id_once_and_no_trunc_shows_full_ids() {
        let rows = rows(&listing(), None);
        assert_eq!(unique_ids(&rows, false), ["bbbbbbbbbbbb", "aaaaaaaaaaaa", "cccccccccccc"]);
        let quiet = render(&rows, &ImagesArgs { quiet: true, no_trunc: true, ..Default::default() }, 0).unwrap();
        assert_eq!(quiet.lines().next(), Some(format!("sha256:{}", "b".repeat(64)).as_str()));
        let table = render(&rows, &ImagesArgs { no_trunc: true, ..Default::default() }, 0).unwrap();
        assert!(table.contains(&format!("sha256:{}", "a".repeat(64))));
    }

    #[test]
    fn json_lines_carry_dockers_keys() {
        let row = &rows(&listing(), Some("busybox:latest"))[0];
        let line = row_value(row, 1000 * SECOND, false).to_string();
        assert!(line.starts_with(r#"{"Containers":"N/A","CreatedAt":"1970-01-01 00:16:40 +0000 UTC","CreatedSince":"Less than a second ago","Digest":"sha256:"#));
        assert!(line.ends_with(r#""ID":"aaaaaaaaaaaa","Repository":"busybox","SharedSize":"N/A","Size":"4.26MB","Tag":"latest","UniqueSize":"N/A","VirtualSize":"4.26MB"}"#));
        let rows = rows(&listing(), Some("busybox:latest"));
        assert_eq!(
            render(&rows, &args(Some("{{json .}}")), 0).unwrap(),
            format!("{}\n", row_value(&rows[0], 0, false))
        );
    }

    #[test]
    fn go_templates_and_table_templates_render_each_image() {
        let rows = rows(&listing(), Some("busybox:latest"));
        let now = 1000 * SECOND;
        assert_eq!(render(&rows, &args(Some("{{.Repository}}:{{.Tag}}")), now).unwrap(), "busybox:latest\n");
        assert_eq!(
            render(&rows, &args(Some("{{.ID}} {{.Size}} {{.CreatedSince}}")), now).unwrap(),
            "aaaaaaaaaaaa 4.26MB Less than a second ago\n"
        );
        assert_eq!(
            render(&rows, &args(Some("table {{.Repository}}\\t{{.ID}}")), now).unwrap(),
            "REPOSITORY   IMAGE ID\nbusybox      aaaaaaaaaaaa\n"
        );
    }

    #[test]
    fn filters_select_dangling_references_labels_and_creation_order() {
        assert_eq!(filtered(&["dangling=true"]), ["old:<none>"]);
        assert_eq!(filtered(&["dangling=false"]), ["ghcr.io/o/app:v1", "busybox:<none>", "busybox:latest"]);
        assert_eq!(filtered(&["reference=busy*:latest"]), ["busybox:latest"]);
        assert_eq!(filtered(&["reference=ghcr.io/*/app"]), ["ghcr.io/o/app:v1"]);
        assert_eq!(filtered(&["label=tier"]), ["ghcr.io/o/app:v1"]);
        assert_eq!(filtered(&["label=tier=web"]), ["ghcr.io/o/app:v1"]);
        assert!(filtered(&["label=tier=db"]).is_empty());
        assert_eq!(filtered(&["before=busybox"]), ["old:<none>"]);
        assert_eq!(filtered(&["since=busybox:latest"]), ["ghcr.io/o/app:v1"]);
        assert_eq!(filtered(&["since=ccc", "before=ghcr.io/o/app:v1"]), ["busybox:<none>", "busybox:latest"]);
    }

    #[test]
    fn bad_filters_and_unknown_images_are_refused() {
        assert!(Filters::parse(&["dangling=maybe".to_string()]).is_err());
        assert!(Filters::parse(&["colour=red".to_string()]).is_err());
        assert!(Filters::parse(&["dangling".to_string()]).is_err());
        let filters = Filters::parse(&["before=alpine".to_string()]).unwrap();
        let err = filters.creation_bounds(&rows(&listing(), None)).unwrap_err();
        assert!(err.to_string().contains("alpine"), "{err}");
    }
}
