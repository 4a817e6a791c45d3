//! `berth images`: Images.List as docker's table, IDs (`-q`) or JSON lines (`--format json`).

use std::collections::HashSet;
use std::io::{self, Write};

use anyhow::{bail, Result};
use berth_proto::images::{ImageSummary, ListImagesRequest};

use crate::daemon::{ctx, Berthd};
use crate::humanize;
use crate::reference::{short_id, FamiliarName};
use crate::table;

/// What docker shows for a missing tag or digest.
const NONE: &str = "<none>";
/// Precision docker's `images` gives sizes.
const SIZE_PRECISION: usize = 3;

/// List images.
#[derive(clap::Args, Debug)]
pub struct ImagesArgs {
    /// Only show image IDs (each once).
    #[arg(short, long)]
    quiet: bool,
    /// Show digests.
    #[arg(long)]
    digests: bool,
    /// `json` (or docker's `{{json .}}`): one JSON object per image.
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
    created_at: i64,
    size: i64,
}

/// Lists images in the requested form.
pub async fn run(berthd: &Berthd, args: &ImagesArgs) -> Result<()> {
    let json = match args.format.as_deref() {
        None => false,
        Some("json" | "{{json .}}") => true,
        Some(other) => bail!("unsupported --format {other:?}: berth knows `json`"),
    };
    let listed = berthd.images().list(ctx(), &ListImagesRequest::default()).await?;
    let rows = rows(&listed.images, args.repository.as_deref());
    let now = humanize::now_nanos();
    let output = if args.quiet {
        unique_ids(&rows).iter().map(|id| format!("{id}\n")).collect()
    } else if json {
        rows.iter().map(|row| format!("{}\n", json_line(row, now))).collect()
    } else {
        render_table(&rows, args.digests, now)
    };
    io::stdout().lock().write_all(output.as_bytes())?;
    Ok(())
}

/// Rows newest first (then by name), keeping those `filter` (`REPOSITORY[:TAG]`) selects.
fn rows(summaries: &[ImageSummary], filter: Option<&str>) -> Vec<ImageRow> {
    let filter = filter.map(FamiliarName::parse);
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
            Some(ImageRow {
                repository: name.repository,
                tag: name.tag.unwrap_or_else(|| NONE.to_string()),
                digest: name.digest.or(target_digest).unwrap_or_else(|| NONE.to_string()),
                id: summary.config_digest.clone(),
                created_at: image.created_at,
                size: summary.size,
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        b.created_at.cmp(&a.created_at).then_with(|| (&a.repository, &a.tag).cmp(&(&b.repository, &b.tag)))
    });
    rows
}

/// Short IDs in row order, each once.
fn unique_ids(rows: &[ImageRow]) -> Vec<&str> {
    let mut seen = HashSet::new();
    rows.iter().map(|row| short_id(&row.id)).filter(|id| seen.insert(*id)).collect()
}

fn render_table(rows: &[ImageRow], digests: bool, now: i64) -> String {
    let mut header = vec!["REPOSITORY", "TAG"];
    if digests {
        header.push("DIGEST");
    }
    header.extend(["IMAGE ID", "CREATED", "SIZE"]);
    let mut lines = vec![header.into_iter().map(str::to_string).collect::<Vec<_>>()];
    for row in rows {
        let mut line = vec![row.repository.clone(), row.tag.clone()];
        if digests {
            line.push(row.digest.clone());
        }
        line.extend([
            short_id(&row.id).to_string(),
            humanize::since(row.created_at, now),
            humanize::size(row.size, SIZE_PRECISION),
        ]);
        lines.push(line);
    }
    table::render(&lines)
}

/// docker's `--format '{{json .}}'` object for a row (keys in docker's alphabetical order).
fn json_line(row: &ImageRow, now: i64) -> serde_json::Value {
    let size = humanize::size(row.size, SIZE_PRECISION);
    serde_json::json!({
        "Containers": "N/A",
        "CreatedAt": humanize::utc_timestamp(row.created_at),
        "CreatedSince": humanize::since(row.created_at, now),
        "Digest": row.digest,
        "ID": short_id(&row.id),
        "Repository": row.repository,
        "SharedSize": "N/A",
        "Size": size,
        "Tag": row.tag,
        "UniqueSize": "N/A",
        "VirtualSize": size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::images::Image;
    use berth_proto::types::Descriptor;

    const SECOND: i64 = 1_000_000_000;

    fn summary(name: &str, id_hex: char, created_s: i64, size: i64) -> ImageSummary {
        ImageSummary {
            image: Some(Image {
                name: name.to_string(),
                target: Some(Descriptor { digest: format!("sha256:{}", "d".repeat(64)), ..Default::default() }).into(),
                created_at: created_s * SECOND,
                ..Default::default()
            })
            .into(),
            config_digest: format!("sha256:{}", id_hex.to_string().repeat(64)),
            size,
            ..Default::default()
        }
    }

    fn listing() -> Vec<ImageSummary> {
        vec![
            summary("docker.io/library/busybox:latest", 'a', 1000, 4_261_000),
            summary(&format!("docker.io/library/busybox@sha256:{}", "d".repeat(64)), 'a', 1000, 4_261_000),
            summary("ghcr.io/o/app:v1", 'b', 2000, 77_800_000),
        ]
    }

    #[test]
    fn table_shows_familiar_names_short_ids_ages_and_sizes_newest_first() {
        let now = (2000 + 2 * 3600) * SECOND;
        let table = render_table(&rows(&listing(), None), false, now);
        let expected = "\
REPOSITORY      TAG       IMAGE ID       CREATED       SIZE
ghcr.io/o/app   v1        bbbbbbbbbbbb   2 hours ago   77.8MB
busybox         <none>    aaaaaaaaaaaa   2 hours ago   4.26MB
busybox         latest    aaaaaaaaaaaa   2 hours ago   4.26MB
";
        assert_eq!(table, expected);
    }

    #[test]
    fn digest_column_shows_the_pinned_or_target_digest() {
        let table = render_table(&rows(&listing(), Some("busybox:latest")), true, 0);
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
    fn quiet_lists_each_id_once() {
        assert_eq!(unique_ids(&rows(&listing(), None)), ["bbbbbbbbbbbb", "aaaaaaaaaaaa"]);
    }

    #[test]
    fn json_lines_carry_dockers_keys() {
        let row = &rows(&listing(), Some("busybox:latest"))[0];
        let line = json_line(row, 1000 * SECOND).to_string();
        assert!(line.starts_with(r#"{"Containers":"N/A","CreatedAt":"1970-01-01 00:16:40 +0000 UTC","CreatedSince":"Less than a second ago","Digest":"sha256:"#));
        assert!(line.ends_with(r#""ID":"aaaaaaaaaaaa","Repository":"busybox","SharedSize":"N/A","Size":"4.26MB","Tag":"latest","UniqueSize":"N/A","VirtualSize":"4.26MB"}"#));
    }
}
