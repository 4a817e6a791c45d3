//! The Dockerfile language as docker 20.10's classic builder reads it (moby/buildkit's
//! `frontend/dockerfile/parser` and `instructions`): parser directives, comments, line
//! continuations, and each instruction's arguments, flags and errors.
//!
//! Words keep their quotes and escapes as written, as docker's AST does; [`Instruction::expand`]
//! removes them and substitutes variables for the instructions docker expands, so a builder calls
//! it on every instruction (and [`expand_word`] on FROM's base and ARG defaults) before using one.

use std::fmt;
use std::time::Duration;

use super::shell_lex::{self, go_quote};

/// The escape character when no `# escape=` directive sets one.
pub const DEFAULT_ESCAPE: char = '\\';

/// What docker 20.10 says when a Dockerfile has no stage to build (only ARGs, say).
pub const NO_IMAGE_MESSAGE: &str = "No image was generated. Is your Dockerfile empty?";

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The escape character: `\` or the one `# escape=` chose.
    pub escape: char,
    /// The `# syntax=` directive's value (recorded; the classic builder ignores it).
    pub syntax: Option<String>,
    /// The ARGs before the first FROM, in order; their defaults are unexpanded.
    pub meta_args: Vec<ArgDecl>,
    /// The build stages in order. Empty when the file holds only ARGs: see [`NO_IMAGE_MESSAGE`].
    pub stages: Vec<Stage>,
}

/// One build stage: a FROM and the instructions up to the next FROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The lowercased `AS` name.
    pub name: Option<String>,
    /// The base image as written, unexpanded (it may name meta ARGs).
    pub base: String,
    /// The `--platform=` flag, unexpanded.
    pub platform: Option<String>,
    /// The FROM's first line (1-based).
    pub line: usize,
    /// The FROM's text, trimmed.
    pub original: String,
    /// The stage's instructions in order.
    pub instructions: Vec<Instruction>,
}

/// One instruction of a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The first line of the instruction (1-based).
    pub line: usize,
    /// docker's `Original`: continuation lines joined without their escape, the first line's
    /// leading space removed, e.g. `RUN echo a &&     echo b`.
    pub original: String,
    /// What the instruction says.
    pub command: Command,
    /// The Dockerfile's escape character, which its expansion uses.
    pub escape: char,
}

/// The instructions of a stage (FROM starts a [`Stage`] instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// RUN; an empty `Exec` when it has no arguments.
    Run(ShellOrExec),
    /// CMD; an empty `Exec` when it has no arguments.
    Cmd(ShellOrExec),
    /// ENTRYPOINT; an empty `Exec` when it has no arguments (docker then clears it).
    Entrypoint(ShellOrExec),
    /// SHELL, always the JSON form.
    Shell(Vec<String>),
    /// COPY.
    Copy(CopyArgs),
    /// ADD (`from` is always `None`).
    Add(CopyArgs),
    /// ENV pairs in order.
    Env(Vec<(String, String)>),
    /// ARG declarations.
    Arg(Vec<ArgDecl>),
    /// WORKDIR.
    Workdir(String),
    /// USER.
    User(String),
    /// EXPOSE ports (`80`, `53/udp`, `8000-8010`), sorted as docker sorts them.
    Expose(Vec<String>),
    /// LABEL pairs in order.
    Label(Vec<(String, String)>),
    /// VOLUME paths.
    Volume(Vec<String>),
    /// STOPSIGNAL.
    StopSignal(String),
    /// HEALTHCHECK.
    Healthcheck(Healthcheck),
    /// ONBUILD: the trigger's text as docker stores it in the image config's `OnBuild`.
    Onbuild(String),
    /// MAINTAINER.
    Maintainer(String),
}

/// The two forms of RUN, CMD, ENTRYPOINT and HEALTHCHECK CMD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellOrExec {
    /// Text for the shell (`/bin/sh -c` or SHELL's).
    Shell(String),
    /// A JSON argv.
    Exec(Vec<String>),
}

/// COPY's and ADD's flags, sources and destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyArgs {
    /// `--from=`: a stage name or index, or an image.
    pub from: Option<String>,
    /// `--chown=`.
    pub chown: Option<String>,
    /// `--chmod=` (docker 20.10's classic builder refuses it: it needs BuildKit).
    pub chmod: Option<String>,
    /// The sources, at least one.
    pub sources: Vec<String>,
    /// The destination.
    pub dest: String,
}

/// One `name[=default]` of an ARG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    /// The argument's name.
    pub name: String,
    /// Its default, unexpanded until [`Instruction::expand`].
    pub default: Option<String>,
}

/// HEALTHCHECK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disables the base image's check.
    None,
    /// `HEALTHCHECK [flags] CMD ...`; unset flags keep docker's defaults.
    Check {
        /// The command (`CMD-SHELL` for `Shell`, `CMD` for `Exec` in the image config).
        test: ShellOrExec,
        /// `--interval=`.
        interval: Option<Duration>,
        /// `--timeout=`.
        timeout: Option<Duration>,
        /// `--start-period=`.
        start_period: Option<Duration>,
        /// `--retries=`.
        retries: Option<u32>,
    },
}

/// A Dockerfile error at a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The 1-based line (of the instruction's first line).
    pub line: usize,
    /// docker's message.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Line 0: an error about the whole file, which docker prints without a line.
        if self.line == 0 {
            return f.write_str(&self.message);
        }
        write!(f, "dockerfile parse error line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

fn error_at(line: usize, message: impl Into<String>) -> ParseError {
    ParseError { line, message: message.into() }
}

/// Parses a Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let source = split_logical_lines(text)?;
    let mut dockerfile =
        Dockerfile { escape: source.escape, syntax: source.syntax, meta_args: Vec::new(), stages: Vec::new() };
    for logical in &source.lines {
        let parsed = parse_logical_line(logical, source.escape)?;
        match parsed {
            Parsed::From(stage) => dockerfile.stages.push(stage),
            Parsed::Instruction(instruction) => match dockerfile.stages.last_mut() {
                Some(stage) => stage.instructions.push(instruction),
                None => match instruction.command {
                    Command::Arg(args) => dockerfile.meta_args.extend(args),
                    // docker reports it without a line.
                    _ => return Err(error_at(0, "no build stage in current context")),
                },
            },
        }
    }
    Ok(dockerfile)
}

/// Parses an ONBUILD trigger taken from an image config (`OnBuild`), as docker does when a build
/// starts FROM that image.
pub fn parse_trigger(text: &str) -> Result<Instruction, ParseError> {
    let source = split_logical_lines(text)?;
    let [logical] = source.lines.as_slice() else {
        return Err(error_at(1, format!("ONBUILD trigger {} is not one instruction", go_quote(text))));
    };
    let (name, _) = split_command(&logical.text);
    check_trigger_name(&name).map_err(|message| error_at(logical.line, message))?;
    match parse_logical_line(logical, source.escape)? {
        Parsed::Instruction(instruction) => Ok(instruction),
        Parsed::From(_) => Err(error_at(logical.line, "FROM isn't allowed as an ONBUILD trigger")),
    }
}

/// Expands one word docker's way (quotes removed, `${}` substituted): FROM's base with the meta
/// ARGs, an ARG default, or any word a builder expands itself.
pub fn expand_word(word: &str, escape: char, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    shell_lex::process_word(word, escape, lookup)
}

impl Instruction {
    /// The instruction with its words expanded as docker 20.10 expands them (moby's
    /// `SupportsSingleWordExpansion`): ENV and LABEL keys and values, ARG names and defaults,
    /// COPY/ADD sources, destination and `--chown`, WORKDIR, USER, EXPOSE, VOLUME, STOPSIGNAL.
    /// RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK, ONBUILD and MAINTAINER are left as written.
    /// The escape character is the Dockerfile's.
    pub fn expand(&self, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Instruction, ParseError> {
        let escape = self.escape;
        let word = |w: &String| shell_lex::process_word(w, escape, lookup).map_err(|m| error_at(self.line, m));
        let words = |ws: &Vec<String>| ws.iter().map(word).collect::<Result<Vec<_>, _>>();
        let pairs = |ps: &Vec<(String, String)>| {
            ps.iter().map(|(k, v)| Ok((word(k)?, word(v)?))).collect::<Result<Vec<_>, ParseError>>()
        };
        let copy_args = |c: &CopyArgs| -> Result<CopyArgs, ParseError> {
            Ok(CopyArgs {
                from: c.from.clone(),
                chown: c.chown.as_ref().map(word).transpose()?,
                chmod: c.chmod.clone(),
                sources: words(&c.sources)?,
                dest: word(&c.dest)?,
            })
        };
        let command = match &self.command {
            Command::Env(ps) => Command::Env(pairs(ps)?),
            Command::Label(ps) => Command::Label(pairs(ps)?),
            Command::Arg(args) => Command::Arg(
                args.iter()
                    .map(|a| Ok(ArgDecl { name: word(&a.name)?, default: a.default.as_ref().map(word).transpose()? }))
                    .collect::<Result<Vec<_>, ParseError>>()?,
            ),
            Command::Copy(c) => Command::Copy(copy_args(c)?),
            Command::Add(c) => Command::Add(copy_args(c)?),
            Command::Workdir(w) => Command::Workdir(word(w)?),
            Command::User(u) => Command::User(word(u)?),
            Command::StopSignal(s) => Command::StopSignal(word(s)?),
            Command::Expose(ports) => Command::Expose(words(ports)?),
            Command::Volume(paths) => Command::Volume(words(paths)?),
            other => other.clone(),
        };
        Ok(Instruction { line: self.line, original: self.original.clone(), command, escape })
    }
}

/// A Dockerfile's instructions as joined lines, after its directives.
struct Source {
    escape: char,
    syntax: Option<String>,
    lines: Vec<LogicalLine>,
}

/// One instruction's text with its continuation lines joined.
struct LogicalLine {
    line: usize,
    text: String,
}

/// The parser directives at the top of the file: each must come before any other line (a blank
/// line, a comment or an unknown directive ends them).
struct Directives {
    done: bool,
    escape: char,
    escape_seen: bool,
    syntax: Option<String>,
}

impl Directives {
    fn consider(&mut self, line: &str) -> Result<(), String> {
        if self.done {
            return Ok(());
        }
        let Some((key, value)) = directive(line) else {
            self.done = true;
            return Ok(());
        };
        match key.to_ascii_lowercase().as_str() {
            "escape" => {
                if self.escape_seen {
                    return Err("only one escape parser directive can be used".into());
                }
                self.escape_seen = true;
                // docker 20.10 takes the first character after `=` and ignores the rest.
                let token = value.chars().next().unwrap_or_default();
                if token != '`' && token != '\\' {
                    return Err(format!("invalid ESCAPE '{token}'. Must be ` or \\"));
                }
                self.escape = token;
            }
            "syntax" => {
                if self.syntax.is_some() {
                    return Err("only one syntax parser directive can be used".into());
                }
                self.syntax = Some(value.to_string());
            }
            _ => self.done = true,
        }
        Ok(())
    }
}

/// `# key=value` (spaces allowed around `#`'s word and `=`): the key and the trimmed value.
fn directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let key_len = rest.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(rest.len());
    let (key, rest) = rest.split_at(key_len);
    if !key.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let value = rest.trim_start().strip_prefix('=')?.trim();
    (!value.is_empty()).then_some((key, value))
}

fn split_logical_lines(text: &str) -> Result<Source, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut physical = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).peekable();
    let mut directives = Directives { done: false, escape: DEFAULT_ESCAPE, escape_seen: false, syntax: None };
    let mut lines = Vec::new();
    let mut current = 0;
    while let Some(raw) = physical.next() {
        if physical.peek().is_none() && raw.is_empty() {
            break; // the newline ending the file
        }
        current += 1;
        let trimmed = raw.trim_start();
        directives.consider(trimmed).map_err(|m| error_at(current, m))?;
        let escape = directives.escape;
        let start = current;
        let (mut text, mut ended) = trim_continuation(strip_comment(trimmed), escape);
        if ended && text.is_empty() {
            continue;
        }
        while !ended {
            let Some(raw) = physical.next() else { break };
            if physical.peek().is_none() && raw.is_empty() {
                break;
            }
            current += 1;
            let content = raw.trim_start();
            if content.starts_with('#') {
                continue; // comments inside a continuation are skipped
            }
            if content.is_empty() {
                continue; // so are empty lines (docker warns about them)
            }
            let (part, part_ended) = trim_continuation(raw, escape);
            text.push_str(&part);
            ended = part_ended;
        }
        lines.push(LogicalLine { line: start, text });
    }
    if lines.is_empty() {
        return Err(error_at(current, "file with no instructions"));
    }
    Ok(Source { escape: directives.escape, syntax: directives.syntax, lines })
}

fn strip_comment(line: &str) -> &str {
    if line.starts_with('#') {
        ""
    } else {
        line
    }
}

/// The line without a trailing escape (and the blanks after it), and whether the line ends the
/// instruction.
fn trim_continuation(line: &str, escape: char) -> (String, bool) {
    let without_blanks = line.trim_end_matches([' ', '\t']);
    match without_blanks.strip_suffix(escape) {
        Some(kept) => (kept.to_string(), false),
        None => (line.to_string(), true),
    }
}

/// Go's `[\t\v\f\r ]`, docker's whitespace between a command and its arguments.
fn is_blank(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

fn split_fields(s: &str) -> Vec<String> {
    s.split(is_blank).filter(|w| !w.is_empty()).map(str::to_string).collect()
}

/// The lowercased command name and the rest of the line.
fn split_command(line: &str) -> (String, &str) {
    let line = line.trim();
    match line.find(is_blank) {
        Some(at) => (line[..at].to_lowercase(), line[at..].trim_start_matches(is_blank)),
        None => (line.to_lowercase(), ""),
    }
}

enum Parsed {
    From(Stage),
    Instruction(Instruction),
}

fn parse_logical_line(logical: &LogicalLine, escape: char) -> Result<Parsed, ParseError> {
    let at = |message: String| error_at(logical.line, message);
    let (name, args) = split_command(&logical.text);
    let (rest, flags) = extract_flags(args);
    if name == "from" {
        let stage = parse_from(&rest, &flags, logical).map_err(at)?;
        return Ok(Parsed::From(stage));
    }
    let command = parse_command(&name, &rest, &flags, &logical.text, escape).map_err(at)?;
    Ok(Parsed::Instruction(Instruction { line: logical.line, original: logical.text.clone(), command, escape }))
}

fn parse_from(rest: &str, flags: &[String], logical: &LogicalLine) -> Result<Stage, String> {
    let args = split_fields(rest);
    let name = match args.as_slice() {
        [_] => None,
        [_, as_word, name] if as_word.eq_ignore_ascii_case("as") => {
            let lowered = name.to_lowercase();
            if !valid_stage_name(&lowered) {
                return Err(format!(
                    "invalid name for build stage: {}, name can't start with a number or contain symbols",
                    go_quote(name)
                ));
            }
            Some(lowered)
        }
        _ => return Err("FROM requires either one or three arguments".into()),
    };
    let [platform] = parse_flags(flags, ["platform"])?;
    Ok(Stage {
        name,
        base: args[0].clone(),
        platform,
        line: logical.line,
        original: logical.text.trim().to_string(),
        instructions: Vec::new(),
    })
}

/// moby's `^[a-z][a-z0-9-_.]*$`.
fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

fn parse_command(name: &str, rest: &str, flags: &[String], original: &str, escape: char) -> Result<Command, String> {
    let no_flags = || parse_flags(flags, []).map(|[]| ());
    let upper = name.to_uppercase();
    Ok(match name {
        "run" | "cmd" | "entrypoint" => {
            no_flags()?;
            let form = match maybe_json(rest)? {
                Args::Json(argv) => ShellOrExec::Exec(argv),
                Args::Text(text) => ShellOrExec::Shell(text),
                Args::None => ShellOrExec::Exec(Vec::new()),
            };
            match name {
                "run" => Command::Run(form),
                "cmd" => Command::Cmd(form),
                _ => Command::Entrypoint(form),
            }
        }
        "shell" => {
            no_flags()?;
            match maybe_json(rest)? {
                Args::Json(argv) if !argv.is_empty() => Command::Shell(argv),
                Args::Text(_) => return Err("SHELL requires the arguments to be in JSON form".into()),
                _ => return Err(at_least_one("SHELL")),
            }
        }
        "copy" | "add" => {
            let args = maybe_json_list(rest)?;
            if args.len() < 2 {
                return Err(format!(
                    "{upper} requires at least two arguments, but only one was provided. Destination could not be determined"
                ));
            }
            let (from, chown, chmod) = if name == "copy" {
                let [chown, from, chmod] = parse_flags(flags, ["chown", "from", "chmod"])?;
                (from, chown, chmod)
            } else {
                let [chown, chmod] = parse_flags(flags, ["chown", "chmod"])?;
                (None, chown, chmod)
            };
            let (dest, sources) = args.split_last().ok_or_else(|| at_least_one(&upper))?;
            let copy = CopyArgs { from, chown, chmod, sources: sources.to_vec(), dest: dest.clone() };
            if name == "copy" {
                Command::Copy(copy)
            } else {
                Command::Add(copy)
            }
        }
        "env" | "label" => {
            let pairs = name_values(rest, &upper, escape)?;
            no_flags()?;
            if pairs.is_empty() {
                return Err(at_least_one(&upper));
            }
            if pairs.iter().any(|(key, _)| key.is_empty()) {
                return Err(format!("{upper} names can not be blank"));
            }
            if name == "env" {
                Command::Env(pairs)
            } else {
                Command::Label(pairs)
            }
        }
        "arg" => {
            // docker 20.10 does not check ARG's flags.
            let words = parse_words(rest, escape);
            if words.is_empty() {
                return Err(at_least_one("ARG"));
            }
            let mut decls = Vec::with_capacity(words.len());
            for word in words {
                let decl = match word.split_once('=') {
                    Some(("", _)) => return Err("ARG names can not be blank".into()),
                    Some((key, value)) => ArgDecl { name: key.to_string(), default: Some(value.to_string()) },
                    None => ArgDecl { name: word, default: None },
                };
                decls.push(decl);
            }
            Command::Arg(decls)
        }
        "workdir" | "user" | "maintainer" | "stopsignal" => {
            if rest.is_empty() {
                return Err(format!("{upper} requires exactly one argument"));
            }
            let value = rest.to_string();
            match name {
                "workdir" => {
                    no_flags()?;
                    Command::Workdir(value)
                }
                "user" => {
                    no_flags()?;
                    Command::User(value)
                }
                "maintainer" => {
                    no_flags()?;
                    Command::Maintainer(value)
                }
                // docker 20.10 does not check STOPSIGNAL's flags.
                _ => Command::StopSignal(value),
            }
        }
        "expose" => {
            // docker sorts the ports as written, before their expansion.
            let mut ports = split_fields(rest);
            ports.sort();
            if ports.is_empty() {
                return Err(at_least_one("EXPOSE"));
            }
            no_flags()?;
            Command::Expose(ports)
        }
        "volume" => {
            let paths = maybe_json_list(rest)?;
            if paths.is_empty() {
                return Err(at_least_one("VOLUME"));
            }
            no_flags()?;
            let mut volumes = Vec::with_capacity(paths.len());
            for path in paths {
                let path = path.trim();
                if path.is_empty() {
                    return Err("VOLUME specified can not be an empty string".into());
                }
                volumes.push(path.to_string());
            }
            Command::Volume(volumes)
        }
        "healthcheck" => Command::Healthcheck(parse_healthcheck(rest, flags)?),
        "onbuild" => {
            if rest.is_empty() {
                return Err(at_least_one("ONBUILD"));
            }
            no_flags()?;
            let (trigger, _) = split_command(rest);
            check_trigger_name(&trigger)?;
            Command::Onbuild(onbuild_expression(original))
        }
        _ => return Err(format!("unknown instruction: {upper}")),
    })
}

fn at_least_one(command: &str) -> String {
    format!("{command} requires at least one argument")
}

/// docker refuses these triggers both in ONBUILD and when it runs an image's triggers.
fn check_trigger_name(lowercase_name: &str) -> Result<(), String> {
    match lowercase_name {
        "onbuild" => Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into()),
        "maintainer" | "from" => Err(format!("{} isn't allowed as an ONBUILD trigger", lowercase_name.to_uppercase())),
        _ => Ok(()),
    }
}

/// moby removes `(?i)^\s*ONBUILD\s*` from the original text.
fn onbuild_expression(original: &str) -> String {
    let trimmed = original.trim_start();
    match trimmed.get(..7) {
        Some(keyword) if keyword.eq_ignore_ascii_case("onbuild") => trimmed[7..].trim_start().to_string(),
        _ => trimmed.to_string(),
    }
}

fn parse_healthcheck(rest: &str, flags: &[String]) -> Result<Healthcheck, String> {
    let (kind, command) = match rest.find(char::is_whitespace) {
        Some(at) => (&rest[..at], rest[at..].trim_start()),
        None => (rest, ""),
    };
    if kind.is_empty() {
        return Err(at_least_one("HEALTHCHECK"));
    }
    let command = maybe_json(command)?;
    let kind = kind.to_uppercase();
    if kind == "NONE" {
        if !matches!(command, Args::None) {
            return Err("HEALTHCHECK NONE takes no arguments".into());
        }
        return Ok(Healthcheck::None);
    }
    let [interval, timeout, start_period, retries] =
        parse_flags(flags, ["interval", "timeout", "start-period", "retries"])?;
    if kind != "CMD" {
        return Err(format!("Unknown type {} in HEALTHCHECK (try CMD)", go_quote(&kind)));
    }
    let test = match command {
        Args::None => return Err("Missing command after HEALTHCHECK CMD".into()),
        Args::Json(argv) if argv.is_empty() => return Err("Missing command after HEALTHCHECK CMD".into()),
        Args::Json(argv) => ShellOrExec::Exec(argv),
        Args::Text(text) => ShellOrExec::Shell(text),
    };
    let interval = health_interval("interval", interval)?;
    let timeout = health_interval("timeout", timeout)?;
    let start_period = health_interval("start-period", start_period)?;
    let retries = match retries.filter(|r| !r.is_empty()) {
        None => None,
        Some(text) => {
            let parsed = parse_go_int32(&text)?;
            if parsed < 1 {
                return Err(format!("--retries must be at least 1 (not {parsed})"));
            }
            Some(parsed as u32)
        }
    };
    Ok(Healthcheck::Check { test, interval, timeout, start_period, retries })
}

/// docker's `parseOptInterval`: a Go duration of at least 1ms.
fn health_interval(flag: &str, value: Option<String>) -> Result<Option<Duration>, String> {
    let Some(text) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let nanos = parse_go_duration(&text)?;
    if nanos < 1_000_000 {
        return Err(format!("Interval {} cannot be less than 1ms", go_quote(flag)));
    }
    let nanos = u64::try_from(nanos).map_err(|_| format!("time: invalid duration {}", go_quote(&text)))?;
    Ok(Some(Duration::from_nanos(nanos)))
}

/// Go's `strconv.ParseInt(s, 10, 32)` with its error texts.
fn parse_go_int32(text: &str) -> Result<i64, String> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseInt: parsing {}: invalid syntax", go_quote(text)));
    }
    match text.parse::<i32>() {
        Ok(value) => Ok(i64::from(value)),
        Err(_) => Err(format!("strconv.ParseInt: parsing {}: value out of range", go_quote(text))),
    }
}

/// Go's `time.ParseDuration`: signed nanoseconds, e.g. `1m30s`, `500ms`, `1.5h`.
pub fn parse_go_duration(text: &str) -> Result<i128, String> {
    let invalid = || format!("time: invalid duration {}", go_quote(text));
    let (negative, mut s) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: i128 = 0;
    while !s.is_empty() {
        let int_len = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (int_part, after) = s.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(f) => {
                let len = f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len());
                f.split_at(len)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = after.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {}", go_quote(text)));
        }
        let unit_nanos: i128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(format!("time: unknown unit {} in duration {}", go_quote(unit), go_quote(text))),
        };
        let int_value: i128 = if int_part.is_empty() { 0 } else { int_part.parse().map_err(|_| invalid())? };
        let mut value = int_value.checked_mul(unit_nanos).ok_or_else(invalid)?;
        // Fractions keep nanosecond precision, truncated as Go does.
        let mut scale = unit_nanos;
        for digit in frac_part.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            value += i128::from(digit - b'0') * scale;
        }
        total = total.checked_add(value).ok_or_else(invalid)?;
        if total > i128::from(i64::MAX) {
            return Err(invalid());
        }
        s = after;
    }
    Ok(if negative { -total } else { total })
}

/// The arguments of a command that takes JSON or text.
enum Args {
    None,
    Json(Vec<String>),
    Text(String),
}

enum Json {
    NotJson,
    Strings(Vec<String>),
}

const NOT_STRING_ARRAY: &str = "when using JSON array syntax, arrays must be comprised of strings only";

/// moby's `parseJSON`: a JSON array of strings; any other JSON or text is not JSON, except an
/// array holding a non-string, which is an error.
fn parse_json(rest: &str) -> Result<Json, String> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Ok(Json::NotJson);
    }
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(rest) else {
        return Ok(Json::NotJson);
    };
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(NOT_STRING_ARRAY.to_string()),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Json::Strings)
}

/// RUN, CMD, ENTRYPOINT, SHELL: JSON, else the text as it is (moby's `parseMaybeJSON`).
fn maybe_json(rest: &str) -> Result<Args, String> {
    if rest.is_empty() {
        return Ok(Args::None);
    }
    Ok(match parse_json(rest)? {
        Json::Strings(argv) => Args::Json(argv),
        Json::NotJson => Args::Text(rest.to_string()),
    })
}

/// COPY, ADD, VOLUME: JSON, else whitespace-separated words (moby's `parseMaybeJSONToList`).
fn maybe_json_list(rest: &str) -> Result<Vec<String>, String> {
    Ok(match parse_json(rest)? {
        Json::Strings(list) => list,
        Json::NotJson => split_fields(rest),
    })
}

/// ENV and LABEL: `key=value ...`, or the legacy `key value with spaces` when the first word has
/// no `=` (moby's `parseNameVal`). Quotes stay for the expansion to remove.
fn name_values(rest: &str, command: &str, escape: char) -> Result<Vec<(String, String)>, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let at = rest.find(is_blank).ok_or_else(|| format!("{command} must have two arguments"))?;
        let value = rest[at..].trim_start_matches(is_blank);
        return Ok(vec![(rest[..at].to_string(), value.to_string())]);
    }
    words
        .iter()
        .map(|word| match word.split_once('=') {
            Some((key, value)) => Ok((key.to_string(), value.to_string())),
            None => Err(format!("Syntax error - can't find = in {}. Must be of the form: name=value", go_quote(word))),
        })
        .collect()
}

/// moby's `parseWords`: whitespace-separated words, where quotes group (and are kept) and the
/// escape character keeps the next character in the word (and is kept too).
fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    loop {
        let Some(&c) = chars.get(pos) else {
            if phase != Phase::Spaces && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        };
        pos += 1;
        match phase {
            Phase::Spaces if c.is_whitespace() => continue,
            Phase::Spaces | Phase::Word => {
                if c.is_whitespace() {
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    phase = Phase::Spaces;
                    blank_ok = false;
                    continue;
                }
                phase = Phase::Word;
                if c == '\'' || c == '"' {
                    quote = c;
                    blank_ok = true;
                    phase = Phase::Quote;
                }
                if c == escape {
                    let Some(&next) = chars.get(pos) else { continue };
                    word.push(c);
                    word.push(next);
                    pos += 1;
                    continue;
                }
                word.push(c);
            }
            Phase::Quote => {
                if c == quote {
                    phase = Phase::Word;
                }
                if c == escape && quote != '\'' {
                    let Some(&next) = chars.get(pos) else {
                        phase = Phase::Word;
                        continue;
                    };
                    word.push(c);
                    word.push(next);
                    pos += 1;
                    continue;
                }
                word.push(c);
            }
        }
    }
    words
}

/// moby's `extractBuilderFlags`: the leading `--name=value` words (quotes and `\` escapes
/// removed) and the rest of the line.
fn extract_flags(line: &str) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut flags = Vec::new();
    let mut word = String::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    while pos <= chars.len() {
        let current = chars.get(pos).copied();
        if phase == Phase::Spaces {
            let Some((offset, c)) = current else { break };
            if c.is_whitespace() {
                pos += 1;
                continue;
            }
            let starts_flag = c == '-' && chars.get(pos + 1).is_some_and(|&(_, n)| n == '-');
            if !starts_flag {
                return (line[offset..].to_string(), flags);
            }
            phase = Phase::Word;
        }
        let Some((offset, mut c)) = current else {
            if word != "--" && (blank_ok || !word.is_empty()) {
                flags.push(word);
            }
            break;
        };
        if phase == Phase::Word {
            if c.is_whitespace() {
                phase = Phase::Spaces;
                if word == "--" {
                    return (line[offset..].trim_start().to_string(), flags);
                }
                if blank_ok || !word.is_empty() {
                    flags.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if c == '\'' || c == '"' {
                quote = c;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            if c == '\\' {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue;
                }
                pos += 1;
                c = chars[pos].1;
            }
            word.push(c);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if c == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        if c == '\\' {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            c = chars[pos].1;
        }
        word.push(c);
        pos += 1;
    }
    (String::new(), flags)
}

/// moby's `BFlags.Parse` for string flags: each flag of `known` given at most once, as
/// `--name=value`; any other is an error. The values in `known`'s order.
fn parse_flags<const N: usize>(flags: &[String], known: [&str; N]) -> Result<[Option<String>; N], String> {
    let mut values: [Option<String>; N] = std::array::from_fn(|_| None);
    let mut seen = [false; N];
    for flag in flags {
        let Some(body) = flag.strip_prefix("--") else {
            return Err(format!("Arg should start with -- : {flag}"));
        };
        let (name, value) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        let index = known.iter().position(|k| *k == name).ok_or_else(|| format!("Unknown flag: {name}"))?;
        if seen[index] {
            return Err(format!("Duplicate flag specified: {name}"));
        }
        seen[index] = true;
        let value = value.ok_or_else(|| format!("Missing a value on flag: {name}"))?;
        // An empty value is no value: `--from=` copies from the context.
        values[index] = Some(value.to_string()).filter(|v| !v.is_empty());
    }
    Ok(values)
}

#[cfg(test)]
mod tests;
