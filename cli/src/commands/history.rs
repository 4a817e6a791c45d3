//! `berth image history`: the config's `history` entries, newest first, as docker's table
//! (IMAGE, CREATED, CREATED BY, SIZE, COMMENT); layer sizes come from the manifest.

use std::io::{self, Write};

use anyhow::Result;
use berth_proto::images::InspectImageResponse;
use serde_json::{json, Value};

use crate::commands::inspect::inspect_one;
use crate::commands::listing;
use crate::daemon::Berthd;
use crate::humanize;
use crate::reference::short_id;

/// What docker shows for a history entry that is not an image of its own.
const MISSING: &str = "<missing>";
/// How much of CREATED BY docker shows without `--no-trunc`.
const CREATED_BY_WIDTH: usize = 45;
const SIZE_PRECISION: usize = 3;
const DEFAULT_TABLE: &str = "{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";

/// Show the history of an image.
#[derive(clap::Args, Debug, Default)]
pub struct HistoryArgs {
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Print sizes and dates in human readable format (the default; `--human=false` for bytes and RFC 3339).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    human: bool,
    /// Format output: table, json, 'table TEMPLATE' or a Go template ('{{.CreatedBy}}').
    #[arg(long)]
    format: Option<String>,
    /// NAME[:TAG|@DIGEST] or image ID (prefix).
    image: String,
}

/// Prints the image's history.
pub async fn run(berthd: &Berthd, args: &HistoryArgs) -> Result<()> {
    let response = inspect_one(&berthd.images(), &args.image).await?;
    let output = render(&entries(&response), args, humanize::now_nanos())?;
    io::stdout().lock().write_all(output.as_bytes())?;
    Ok(())
}

/// One history entry.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    /// The image ID for the newest entry, `<missing>` for the others (as docker).
    id: String,
    /// Unix nanoseconds; 0 when the entry has no valid `created`.
    created: i64,
    created_by: String,
    /// The entry's layer size; 0 for an `empty_layer` entry.
    size: i64,
    comment: String,
}

/// The config's history, newest first, each non-empty entry paired with its manifest layer.
fn entries(response: &InspectImageResponse) -> Vec<Entry> {
    let config: Value = serde_json::from_slice(&response.config).unwrap_or_default();
    let manifest: Value = serde_json::from_slice(&response.manifest).unwrap_or_default();
    let mut layer_sizes = manifest
        .get("layers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|layer| layer.get("size").and_then(Value::as_i64).unwrap_or(0));
    let history = config.get("history").and_then(Value::as_array).cloned().unwrap_or_default();
    let text = |entry: &Value, key: &str| entry.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
    let mut entries: Vec<Entry> = history
        .iter()
        .map(|entry| {
            let empty = entry.get("empty_layer").and_then(Value::as_bool).unwrap_or(false);
            Entry {
                id: MISSING.to_string(),
                created: parse_time(&text(entry, "created")),
                created_by: text(entry, "created_by"),
                size: if empty { 0 } else { layer_sizes.next().unwrap_or(0) },
                comment: text(entry, "comment"),
            }
        })
        .collect();
    entries.reverse();
    if let (Some(top), Some(summary)) = (entries.first_mut(), response.summary.as_ref()) {
        top.id = summary.config_digest.clone();
    }
    entries
}

fn parse_time(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339).ok().and_then(|t| t.timestamp_nanos_opt()).unwrap_or(0)
}

fn render(entries: &[Entry], args: &HistoryArgs, now: i64) -> Result<String> {
    let values: Vec<Value> = entries.iter().map(|entry| entry_value(entry, args, now)).collect();
    if args.quiet {
        return Ok(values.iter().map(|v| format!("{}\n", v["ID"].as_str().unwrap_or_default())).collect());
    }
    listing::render(&values, args.format.as_deref(), DEFAULT_TABLE, &headers())
}

/// docker's history formatter object for an entry.
fn entry_value(entry: &Entry, args: &HistoryArgs, now: i64) -> Value {
    let id = if args.no_trunc || entry.id == MISSING { entry.id.as_str() } else { short_id(&entry.id) };
    let created_by = entry.created_by.replace('\t', " ");
    let created_by = if args.no_trunc { created_by } else { ellipsis(&created_by, CREATED_BY_WIDTH) };
    let (created_since, size) = if args.human {
        (humanize::since(entry.created, now), humanize::size(entry.size, SIZE_PRECISION))
    } else {
        (humanize::rfc3339(entry.created), entry.size.to_string())
    };
    json!({
        "Comment": entry.comment,
        "CreatedAt": humanize::rfc3339(entry.created),
        "CreatedBy": created_by,
        "CreatedSince": created_since,
        "ID": id,
        "Size": size,
    })
}

/// docker's `Ellipsis`: at most `width` characters, the last one `…` when cut.
fn ellipsis(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width - 1).collect();
    cut.push('…');
    cut
}

fn headers() -> Value {
    json!({
        "Comment": "COMMENT", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY", "CreatedSince": "CREATED",
        "ID": "IMAGE", "Size": "SIZE",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::images::ImageSummary;

    const SECOND: i64 = 1_000_000_000;

    fn response() -> InspectImageResponse {
        let config = json!({
            "history": [
                {"created": "2024-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:0123456789abcdef0123456789abcdef in / "},
                {"created": "2024-01-01T00:00:01Z", "created_by": "/bin/sh -c #(nop)  CMD [\"sh\"]", "empty_layer": true},
                {"created": "2024-01-02T00:00:00Z", "created_by": "RUN /bin/sh -c echo hi > /f", "comment": "buildkit.dockerfile.v0"},
            ]
        });
        let manifest = json!({"layers": [{"size": 2_150_000}, {"size": 1_234}]});
        InspectImageResponse {
            summary: Some(ImageSummary { config_digest: format!("sha256:{}", "a".repeat(64)), ..Default::default() })
                .into(),
            config: config.to_string().into_bytes(),
            manifest: manifest.to_string().into_bytes(),
            ..Default::default()
        }
    }

    fn args() -> HistoryArgs {
        HistoryArgs { human: true, ..Default::default() }
    }

    #[test]
    fn history_is_newest_first_with_layer_sizes_and_missing_ids_below_the_top() {
        let now = parse_time("2024-01-02T00:00:00Z") + 3 * 3600 * SECOND;
        let table = render(&entries(&response()), &args(), now).unwrap();
        let expected = "\
IMAGE          CREATED        CREATED BY                                      SIZE      COMMENT
aaaaaaaaaaaa   3 hours ago    RUN /bin/sh -c echo hi > /f                     1.23kB    buildkit.dockerfile.v0
<missing>      27 hours ago   /bin/sh -c #(nop)  CMD [\"sh\"]                   0B        
<missing>      27 hours ago   /bin/sh -c #(nop) ADD file:0123456789abcdef0…   2.15MB    
";
        assert_eq!(table, expected);
    }

    #[test]
    fn quiet_no_trunc_and_templates() {
        let entries = entries(&response());
        let quiet = render(&entries, &HistoryArgs { quiet: true, no_trunc: true, ..args() }, 0).unwrap();
        assert_eq!(quiet, format!("sha256:{}\n<missing>\n<missing>\n", "a".repeat(64)));
        let created_by =
            render(&entries, &HistoryArgs { format: Some("{{.CreatedBy}}".into()), no_trunc: true, ..args() }, 0)
                .unwrap();
        assert!(created_by.ends_with("ADD file:0123456789abcdef0123456789abcdef in / \n"));
        let bytes =
            render(&entries, &HistoryArgs { format: Some("{{.Size}}".into()), human: false, ..args() }, 0).unwrap();
        assert_eq!(bytes, "1234\n0\n2150000\n");
    }
}
