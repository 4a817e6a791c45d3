//! The part of Go's text/template that `--format` flags use, over JSON values: text, field paths
//! (`{{.State.Status}}`, `{{.}}`), `{{range .X}}…{{else}}…{{end}}`, `{{if .X}}…{{end}}`,
//! `{{json .X}}`, `{{index .Labels "k"}}`, `{{join .Args " "}}`, `{{upper .X}}`/`{{lower .X}}`,
//! and `{{- -}}` whitespace trimming. Values print as Go prints
//! them (`<no value>` for a missing key, `[a b]` for lists, `map[k:v]` for objects).

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

/// A parsed `--format` template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Action(Action),
    /// `{{range X}}body{{else}}otherwise{{end}}`: body once per element of X, with it as `.`.
    Range {
        over: Action,
        body: Vec<Part>,
        otherwise: Vec<Part>,
    },
    /// `{{if X}}body{{else}}otherwise{{end}}`.
    If {
        condition: Action,
        body: Vec<Part>,
        otherwise: Vec<Part>,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Action {
    /// `.A.B`, or `.` (empty path).
    Field(Vec<String>),
    /// A function applied to arguments: json, index, join, upper, lower, len.
    Call(String, Vec<Argument>),
}

#[derive(Debug, Clone, PartialEq)]
enum Argument {
    Field(Vec<String>),
    Text(String),
}

/// A template's source cut into text and the insides of `{{…}}`.
enum Token {
    Text(String),
    Action(String),
}

/// What ended a run of parts.
#[derive(Debug, PartialEq)]
enum Ending {
    End,
    Else,
    Eof,
}

impl Template {
    /// Parses `source`; refuses actions outside the supported set (with, define, pipes, …).
    pub fn parse(source: &str) -> Result<Template> {
        let mut tokens = tokenize(source)?.into_iter();
        match parse_parts(&mut tokens)? {
            (parts, Ending::Eof) => Ok(Template { parts }),
            (_, ending) => bail!("template: unexpected {{{{{}}}}}", if ending == Ending::End { "end" } else { "else" }),
        }
    }

    /// The template applied to `value`.
    pub fn render(&self, value: &Value) -> Result<String> {
        let mut out = String::new();
        render_parts(&self.parts, value, &mut out)?;
        Ok(out)
    }
}

fn tokenize(source: &str) -> Result<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut rest = source;
    while let Some(open) = rest.find("{{") {
        let mut text = rest[..open].to_string();
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or_else(|| anyhow!("template: unclosed action in {source:?}"))?;
        let mut action = &after[..close];
        rest = &after[close + 2..];
        if let Some(trimmed) = action.strip_prefix('-') {
            text.truncate(text.trim_end().len());
            action = trimmed;
        }
        let trim_after = action.ends_with('-') && action.len() > 1;
        if trim_after {
            action = &action[..action.len() - 1];
        }
        if !text.is_empty() {
            tokens.push(Token::Text(text));
        }
        tokens.push(Token::Action(action.trim().to_string()));
        if trim_after {
            rest = rest.trim_start();
        }
    }
    if !rest.is_empty() {
        tokens.push(Token::Text(rest.to_string()));
    }
    Ok(tokens)
}

/// Parts up to the `{{end}}` or `{{else}}` that closes the current block, or the end.
fn parse_parts(tokens: &mut impl Iterator<Item = Token>) -> Result<(Vec<Part>, Ending)> {
    let mut parts = Vec::new();
    while let Some(token) = tokens.next() {
        let action = match token {
            Token::Text(text) => {
                parts.push(Part::Text(text));
                continue;
            }
            Token::Action(action) => action,
        };
        match action.split_once(' ').map_or((action.as_str(), ""), |(word, rest)| (word, rest.trim())) {
            ("end", "") => return Ok((parts, Ending::End)),
            ("else", "") => return Ok((parts, Ending::Else)),
            (block @ ("range" | "if"), argument) => {
                let head = parse_action(argument)?;
                let (body, otherwise) = parse_block(tokens, block)?;
                parts.push(if block == "range" {
                    Part::Range { over: head, body, otherwise }
                } else {
                    Part::If { condition: head, body, otherwise }
                });
            }
            _ => parts.push(Part::Action(parse_action(&action)?)),
        }
    }
    Ok((parts, Ending::Eof))
}

/// A block's body and its `{{else}}` part, through its `{{end}}`.
fn parse_block(tokens: &mut impl Iterator<Item = Token>, block: &str) -> Result<(Vec<Part>, Vec<Part>)> {
    let (body, ending) = parse_parts(tokens)?;
    let otherwise = match ending {
        Ending::End => return Ok((body, Vec::new())),
        Ending::Else => match parse_parts(tokens)? {
            (otherwise, Ending::End) => otherwise,
            _ => bail!("template: {{{{{block}}}}} without {{{{end}}}}"),
        },
        Ending::Eof => bail!("template: {{{{{block}}}}} without {{{{end}}}}"),
    };
    Ok((body, otherwise))
}

fn render_parts(parts: &[Part], dot: &Value, out: &mut String) -> Result<()> {
    for part in parts {
        match part {
            Part::Text(text) => out.push_str(text),
            Part::Action(Action::Field(path)) => out.push_str(&go_string(lookup(dot, path))),
            Part::Action(Action::Call(function, arguments)) => out.push_str(&call(function, arguments, dot)?),
            Part::Range { over, body, otherwise } => {
                let items: Vec<Value> = match value_of(over, dot)? {
                    Value::Array(list) => list,
                    Value::Object(map) => map.into_iter().map(|(_, v)| v).collect(),
                    _ => Vec::new(),
                };
                if items.is_empty() {
                    render_parts(otherwise, dot, out)?;
                }
                for item in &items {
                    render_parts(body, item, out)?;
                }
            }
            Part::If { condition, body, otherwise } => {
                let chosen = if is_true(&value_of(condition, dot)?) { body } else { otherwise };
                render_parts(chosen, dot, out)?;
            }
        }
    }
    Ok(())
}

/// An action's value, for `range` and `if`.
fn value_of(action: &Action, dot: &Value) -> Result<Value> {
    match action {
        Action::Field(path) => Ok(lookup(dot, path).cloned().unwrap_or(Value::Null)),
        Action::Call(function, arguments) => call(function, arguments, dot).map(Value::String),
    }
}

/// Go's truth: false, 0, nil and empty strings, lists and maps are false.
fn is_true(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(list) => !list.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

fn parse_action(action: &str) -> Result<Action> {
    let words = split_words(action)?;
    match words.as_slice() {
        [] => bail!("template: missing value for command"),
        [Argument::Field(path)] => Ok(Action::Field(path.clone())),
        [Argument::Text(function), arguments @ ..]
            if matches!(function.as_str(), "json" | "index" | "join" | "upper" | "lower" | "len" | "title") =>
        {
            Ok(Action::Call(function.clone(), arguments.to_vec()))
        }
        _ => bail!(
            "template: unsupported action {{{{{action}}}}} (berth supports fields, range, if, json, index, join, upper, lower, len)"
        ),
    }
}

/// Words of an action: `.A.B` fields, `"quoted"` strings, bare function names.
fn split_words(action: &str) -> Result<Vec<Argument>> {
    let mut words = Vec::new();
    let mut chars = action.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '"' {
            chars.next();
            let mut text = String::new();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next() {
                        Some((_, 'n')) => text.push('\n'),
                        Some((_, 't')) => text.push('\t'),
                        Some((_, other)) => text.push(other),
                        None => break,
                    },
                    other => text.push(other),
                }
            }
            if !closed {
                bail!("template: unterminated quoted string in {action:?}");
            }
            words.push(Argument::Text(text));
            continue;
        }
        let mut end = action.len();
        while let Some(&(i, c)) = chars.peek() {
            if c.is_whitespace() {
                end = i;
                break;
            }
            chars.next();
        }
        let word = &action[start..end];
        if word.starts_with('.') {
            words.push(Argument::Field(word.split('.').filter(|s| !s.is_empty()).map(str::to_string).collect()));
        } else {
            words.push(Argument::Text(word.to_string()));
        }
    }
    Ok(words)
}

fn lookup<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |value, key| value.get(key))
}

fn call(function: &str, arguments: &[Argument], value: &Value) -> Result<String> {
    let resolved: Vec<Option<Value>> = arguments
        .iter()
        .map(|a| match a {
            Argument::Field(path) => lookup(value, path).cloned(),
            Argument::Text(text) => Some(Value::String(text.clone())),
        })
        .collect();
    match (function, resolved.as_slice()) {
        ("json", [argument]) => Ok(serde_json::to_string(argument.as_ref().unwrap_or(&Value::Null))?),
        ("index", [Some(collection), keys @ ..]) if !keys.is_empty() => {
            let mut current = Some(collection.clone());
            for key in keys {
                current = match (current, key) {
                    (Some(Value::Object(map)), Some(Value::String(key))) => map.get(key).cloned(),
                    (Some(Value::Array(list)), Some(Value::Number(n))) => {
                        n.as_u64().and_then(|n| list.get(n as usize)).cloned()
                    }
                    (Some(Value::Array(list)), Some(Value::String(n))) => {
                        n.parse::<usize>().ok().and_then(|n| list.get(n)).cloned()
                    }
                    _ => None,
                };
            }
            Ok(go_string(current.as_ref()))
        }
        ("index", [None, ..]) => Ok(go_string(None)),
        ("join", [Some(Value::Array(list)), Some(Value::String(separator))]) => {
            Ok(list.iter().map(|v| go_string(Some(v))).collect::<Vec<_>>().join(separator))
        }
        ("upper", [argument]) => Ok(go_string(argument.as_ref()).to_uppercase()),
        ("lower", [argument]) => Ok(go_string(argument.as_ref()).to_lowercase()),
        ("title", [argument]) => {
            let text = go_string(argument.as_ref());
            let mut chars = text.chars();
            Ok(chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default())
        }
        ("len", [Some(Value::Array(list))]) => Ok(list.len().to_string()),
        ("len", [Some(Value::Object(map))]) => Ok(map.len().to_string()),
        ("len", [Some(Value::String(text))]) => Ok(text.len().to_string()),
        _ => bail!("template: wrong arguments for {function}"),
    }
}

/// A value as Go's `fmt.Print` shows it.
fn go_string(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "<no value>".to_string(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Array(list)) => {
            format!("[{}]", list.iter().map(|v| go_string(Some(v))).collect::<Vec<_>>().join(" "))
        }
        Some(Value::Object(map)) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let body: Vec<String> = entries.iter().map(|(k, v)| format!("{k}:{}", go_string(Some(v)))).collect();
            format!("map[{}]", body.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(template: &str, value: &Value) -> String {
        Template::parse(template).expect("parses").render(value).expect("renders")
    }

    #[test]
    fn field_paths_reach_nested_values() {
        let value = json!({"State": {"Status": "running", "Pid": 42, "Running": true}, "Name": "/web"});
        assert_eq!(render("{{.State.Status}}", &value), "running");
        assert_eq!(render("{{ .State.Pid }} {{.State.Running}}", &value), "42 true");
        assert_eq!(render("name={{.Name}}\n", &value), "name=/web\n");
        assert_eq!(render("{{.Missing}}", &value), "<no value>");
        assert_eq!(render("{{.Name.Deeper}}", &value), "<no value>");
    }

    #[test]
    fn json_function_prints_compact_json() {
        let value = json!({"Config": {"Labels": {"a": "b"}, "Cmd": ["sh", "-c"]}});
        assert_eq!(render("{{json .Config.Labels}}", &value), r#"{"a":"b"}"#);
        assert_eq!(render("{{json .Config.Cmd}}", &value), r#"["sh","-c"]"#);
        assert_eq!(render("{{json .Nothing}}", &value), "null");
    }

    #[test]
    fn lists_and_maps_print_as_go_does() {
        let value = json!({"Args": ["-c", "ls"], "Labels": {"b": "2", "a": "1"}});
        assert_eq!(render("{{.Args}}", &value), "[-c ls]");
        assert_eq!(render("{{.Labels}}", &value), "map[a:1 b:2]");
        assert_eq!(render("{{join .Args \",\"}}", &value), "-c,ls");
        assert_eq!(render("{{index .Labels \"a\"}}", &value), "1");
        assert_eq!(render("{{index .Labels \"z\"}}", &value), "<no value>");
        assert_eq!(render("{{len .Args}} {{upper .Labels.a}}", &value), "2 1");
    }

    #[test]
    fn trim_markers_remove_surrounding_whitespace() {
        let value = json!({"A": "x"});
        assert_eq!(render("a  {{- .A -}}  b", &value), "axb");
    }

    #[test]
    fn range_and_if_walk_lists_and_choose_branches() {
        let value =
            json!({"Mounts": [{"Source": "/a"}, {"Source": "/b"}], "Tty": false, "Labels": {"x": "1"}, "None": []});
        assert_eq!(render("{{range .Mounts}}{{.Source}} {{end}}", &value), "/a /b ");
        assert_eq!(render("{{range .None}}x{{else}}empty{{end}}", &value), "empty");
        assert_eq!(render("{{range .Labels}}{{.}}{{end}}", &value), "1");
        assert_eq!(render("{{if .Tty}}tty{{else}}no tty{{end}}", &value), "no tty");
        assert_eq!(render("{{if .Mounts}}{{len .Mounts}} mounts{{end}}", &value), "2 mounts");
        assert_eq!(render("{{range .Mounts}}{{if .Source}}[{{.Source}}]{{end}}{{end}}", &value), "[/a][/b]");
        assert!(Template::parse("{{range .Mounts}}").is_err());
        assert!(Template::parse("{{end}}").is_err());
        assert!(Template::parse("{{if .A}}{{else}}").is_err());
    }

    #[test]
    fn unsupported_actions_are_errors() {
        assert!(Template::parse("{{with .Mounts}}{{.Source}}{{end}}").is_err());
        assert!(Template::parse("{{.A").is_err());
        assert!(Template::parse("{{index .A \"b}}").is_err());
    }
}
