//! `--format` for listings (`ps`, `images`, `image history`): `json` lines, a Go template per row, or
//! `table TEMPLATE` with a header row rendered from the column names docker gives each field.

use anyhow::Result;
use serde_json::Value;

use crate::table;
use crate::template::Template;

/// The lines a listing prints for `rows`: `format` is None or `table` for `default_table`,
/// `json` for one JSON object per row, `table TEMPLATE` for a table of TEMPLATE's cells under
/// `headers`' names, anything else a template rendered once per row.
pub fn render(rows: &[Value], format: Option<&str>, default_table: &str, headers: &Value) -> Result<String> {
    let format = format.unwrap_or("table");
    if format == "json" {
        return Ok(rows.iter().map(|row| format!("{row}\n")).collect());
    }
    // docker's users write `\t` inside quotes, meaning a tab.
    let format = format.replace("\\t", "\t").replace("\\n", "\n");
    let (table, source) = match format.strip_prefix("table") {
        Some("") => (true, default_table.to_string()),
        Some(rest) if rest.starts_with(char::is_whitespace) => (true, rest.trim_start().to_string()),
        _ => (false, format.clone()),
    };
    let template = Template::parse(&source)?;
    if !table {
        let mut out = String::new();
        for row in rows {
            out.push_str(&template.render(row)?);
            out.push('\n');
        }
        return Ok(out);
    }
    let mut cells = vec![split_cells(&template.render(headers)?)];
    for row in rows {
        cells.push(split_cells(&template.render(row)?));
    }
    Ok(table::render(&cells))
}

fn split_cells(line: &str) -> Vec<String> {
    line.split('\t').map(str::to_string).collect()
}

/// Go's `path.Match` as docker's reference filters use it: `*` any run of characters but `/`,
/// `?` one such character, everything else itself.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let (pattern, text): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    glob_from(&pattern, &text)
}

fn glob_from(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => {
            (0..=text.len()).take_while(|&n| n == 0 || text[n - 1] != '/').any(|n| glob_from(rest, &text[n..]))
        }
        Some(('?', rest)) => text.first().is_some_and(|&c| c != '/') && glob_from(rest, &text[1..]),
        Some((&c, rest)) => text.first() == Some(&c) && glob_from(rest, &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_templates_get_a_header_row_and_plain_templates_do_not() {
        let rows = [json!({"A": "x", "B": "1"}), json!({"A": "yy", "B": "2"})];
        let headers = json!({"A": "COL A", "B": "COL B"});
        assert_eq!(render(&rows, Some("{{.A}}:{{.B}}"), "", &headers).unwrap(), "x:1\nyy:2\n");
        assert_eq!(
            render(&rows, Some("table {{.B}}\\t{{.A}}"), "", &headers).unwrap(),
            "COL B     COL A\n1         x\n2         yy\n"
        );
        assert_eq!(render(&rows, None, "{{.A}}", &headers).unwrap(), "COL A\nx\nyy\n");
        assert_eq!(render(&rows[..1], Some("json"), "", &headers).unwrap(), "{\"A\":\"x\",\"B\":\"1\"}\n");
        assert_eq!(render(&rows[..1], Some("{{json .}}"), "", &headers).unwrap(), "{\"A\":\"x\",\"B\":\"1\"}\n");
    }

    #[test]
    fn globs_match_like_go_path_match() {
        assert!(glob_matches("busy*", "busybox"));
        assert!(glob_matches("busybox:*", "busybox:1.36"));
        assert!(glob_matches("b?sybox", "busybox"));
        assert!(!glob_matches("*", "ghcr.io/o/app"));
        assert!(glob_matches("ghcr.io/*/app", "ghcr.io/o/app"));
        assert!(!glob_matches("busy", "busybox"));
    }
}
