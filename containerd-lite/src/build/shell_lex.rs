//! The variable substitution of Dockerfile words, as docker 20.10's shell lexer
//! (moby/buildkit `frontend/dockerfile/shell`) does it: quotes are removed, single quotes stop
//! expansion, the escape character makes the next character literal, and `$VAR`, `${VAR}`,
//! `${VAR:-word}` and `${VAR:+word}` are replaced. Unset variables expand to the empty string.

use std::iter::Peekable;
use std::str::Chars;

/// Processes one Dockerfile word: expands its variables through `lookup` and removes its quotes
/// and escapes. The error is docker's message, e.g. `failed to process "${": syntax error:
/// missing '}'`.
pub fn process_word(word: &str, escape: char, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut lexer = Lexer { chars: word.chars().peekable(), escape, lookup };
    lexer.process_until(None).map_err(|message| format!("failed to process {}: {message}", go_quote(word)))
}

/// The string as Go's `%q` prints it (for the ASCII and UTF-8 text of Dockerfiles).
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

struct Lexer<'a> {
    chars: Peekable<Chars<'a>>,
    escape: char,
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Lexer<'_> {
    /// The text up to `stop` (consumed) or the end of the word: moby's `processStopOn`.
    fn process_until(&mut self, stop: Option<char>) -> Result<String, String> {
        let mut result = String::new();
        while let Some(&c) = self.chars.peek() {
            if Some(c) == stop {
                self.chars.next();
                return Ok(result);
            }
            match c {
                '\'' => result.push_str(&self.single_quoted()?),
                '"' => result.push_str(&self.double_quoted()?),
                '$' => result.push_str(&self.dollar()?),
                _ => {
                    self.chars.next();
                    if c == self.escape {
                        // The escape makes the next character literal; a trailing one vanishes.
                        match self.chars.next() {
                            Some(next) => result.push(next),
                            None => break,
                        }
                    } else {
                        result.push(c);
                    }
                }
            }
        }
        match stop {
            Some(stop) => Err(format!("unexpected end of statement while looking for matching {stop}")),
            None => Ok(result),
        }
    }

    /// Everything between single quotes is literal; a single quote cannot be escaped inside.
    fn single_quoted(&mut self) -> Result<String, String> {
        self.chars.next();
        let mut result = String::new();
        loop {
            match self.chars.next() {
                None => return Err("unexpected end of statement while looking for matching single-quote".into()),
                Some('\'') => return Ok(result),
                Some(c) => result.push(c),
            }
        }
    }

    /// Double quotes keep everything but `$` expansions; the escape character escapes only `"`,
    /// `$` and itself, and is kept before any other character.
    fn double_quoted(&mut self) -> Result<String, String> {
        self.chars.next();
        let mut result = String::new();
        loop {
            match self.chars.peek().copied() {
                None => return Err("unexpected end of statement while looking for matching double-quote".into()),
                Some('"') => {
                    self.chars.next();
                    return Ok(result);
                }
                Some('$') => result.push_str(&self.dollar()?),
                Some(c) => {
                    self.chars.next();
                    if c == self.escape {
                        match self.chars.peek().copied() {
                            None => continue,
                            Some(next) if next == '"' || next == '$' || next == self.escape => {
                                self.chars.next();
                                result.push(next);
                                continue;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(c);
                }
            }
        }
    }

    /// `$NAME`, `${NAME}`, `${NAME:-word}`, `${NAME:+word}`; a lone `$` stays.
    fn dollar(&mut self) -> Result<String, String> {
        self.chars.next();
        if self.chars.peek() != Some(&'{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(self.value_of(&name));
        }
        self.chars.next();
        match self.chars.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{') | Some('}') | Some(':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        let name = self.name();
        match self.chars.next() {
            Some('}') => Ok(self.value_of(&name)),
            Some(':') => {
                let modifier = self.chars.next();
                let word = self.process_until(Some('}'))?;
                let value = self.value_of(&name);
                match modifier {
                    Some('+') => Ok(if value.is_empty() { value } else { word }),
                    Some('-') => Ok(if value.is_empty() { word } else { value }),
                    Some(m) => Err(format!("unsupported modifier ({m}) in substitution")),
                    None => Err("unsupported modifier (\u{fffd}) in substitution".into()),
                }
            }
            _ => Err("missing ':' in substitution".into()),
        }
    }

    /// A variable name: letters, digits and `_`; a leading digit is a one-digit name (`$1`).
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(&c) = self.chars.peek() {
            if name.is_empty() && c.is_ascii_digit() {
                self.chars.next();
                name.push(c);
                return name;
            }
            if !(c.is_alphanumeric() || c == '_') {
                break;
            }
            self.chars.next();
            name.push(c);
        }
        name
    }

    fn value_of(&self, name: &str) -> String {
        (self.lookup)(name).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "FOO" => Some("foo".into()),
            "BAR" => Some("bar baz".into()),
            "EMPTY" => Some(String::new()),
            "1" => Some("one".into()),
            _ => None,
        }
    }

    fn expand(word: &str) -> Result<String, String> {
        process_word(word, '\\', &env)
    }

    #[test]
    fn plain_and_braced_variables_expand() {
        assert_eq!(expand("$FOO").unwrap(), "foo");
        assert_eq!(expand("${FOO}").unwrap(), "foo");
        assert_eq!(expand("a${FOO}b").unwrap(), "afoob");
        assert_eq!(expand("$FOO/$BAR").unwrap(), "foo/bar baz");
        assert_eq!(expand("$FOOx").unwrap(), "", "the name runs to the first non-name character");
    }

    #[test]
    fn unset_variables_expand_to_nothing() {
        assert_eq!(expand("x${NOPE}y$NOPE").unwrap(), "xy");
    }

    #[test]
    fn default_and_alternative_values_follow_set_and_empty() {
        assert_eq!(expand("${NOPE:-def}").unwrap(), "def");
        assert_eq!(expand("${EMPTY:-def}").unwrap(), "def");
        assert_eq!(expand("${FOO:-def}").unwrap(), "foo");
        assert_eq!(expand("${FOO:+alt}").unwrap(), "alt");
        assert_eq!(expand("${NOPE:+alt}").unwrap(), "");
        assert_eq!(expand("${EMPTY:+alt}").unwrap(), "");
        assert_eq!(expand("${NOPE:-$FOO}").unwrap(), "foo", "the word is itself expanded");
        assert_eq!(expand("${NOPE:-a\\}b}").unwrap(), "a}b");
    }

    #[test]
    fn docker_20_10_has_no_colonless_or_question_modifiers() {
        assert_eq!(expand("${FOO-x}").unwrap_err(), "failed to process \"${FOO-x}\": missing ':' in substitution");
        assert_eq!(
            expand("${FOO:?x}").unwrap_err(),
            "failed to process \"${FOO:?x}\": unsupported modifier (?) in substitution"
        );
    }

    #[test]
    fn malformed_substitutions_are_errors() {
        assert_eq!(expand("${").unwrap_err(), "failed to process \"${\": syntax error: missing '}'");
        assert_eq!(expand("${}").unwrap_err(), "failed to process \"${}\": syntax error: bad substitution");
        assert_eq!(expand("${:a}").unwrap_err(), "failed to process \"${:a}\": syntax error: bad substitution");
        assert_eq!(expand("${FOO").unwrap_err(), "failed to process \"${FOO\": missing ':' in substitution");
        assert_eq!(
            expand("${FOO:-abc").unwrap_err(),
            "failed to process \"${FOO:-abc\": unexpected end of statement while looking for matching }"
        );
    }

    #[test]
    fn lone_dollars_and_digits() {
        assert_eq!(expand("$").unwrap(), "$");
        assert_eq!(expand("a$ b").unwrap(), "a$ b");
        assert_eq!(expand("$12").unwrap(), "one2", "a digit name is one digit long");
    }

    #[test]
    fn single_quotes_stop_expansion_and_are_removed() {
        assert_eq!(expand("'$FOO'").unwrap(), "$FOO");
        assert_eq!(expand("'a\\b'").unwrap(), "a\\b");
        assert!(expand("'abc").unwrap_err().ends_with("looking for matching single-quote"));
    }

    #[test]
    fn double_quotes_expand_and_keep_other_escapes() {
        assert_eq!(expand("\"$FOO bar\"").unwrap(), "foo bar");
        assert_eq!(expand("\"a\\\"b\"").unwrap(), "a\"b");
        assert_eq!(expand("\"\\$FOO\"").unwrap(), "$FOO");
        assert_eq!(expand("\"a\\nb\"").unwrap(), "a\\nb", "\\n is no escape inside double quotes");
        assert_eq!(expand("\"a\\\\b\"").unwrap(), "a\\b");
        assert!(expand("\"abc").unwrap_err().ends_with("looking for matching double-quote"));
    }

    #[test]
    fn escapes_outside_quotes_make_the_next_character_literal() {
        assert_eq!(expand("\\$FOO").unwrap(), "$FOO");
        assert_eq!(expand("\\${FOO}").unwrap(), "${FOO}");
        assert_eq!(expand("a\\ b").unwrap(), "a b");
        assert_eq!(expand("a\\").unwrap(), "a", "a trailing escape vanishes");
        assert_eq!(expand("\\'$FOO\\'").unwrap(), "'foo'");
    }

    #[test]
    fn backtick_escape_replaces_backslash() {
        let lex = |w: &str| process_word(w, '`', &env);
        assert_eq!(lex("`$FOO").unwrap(), "$FOO");
        assert_eq!(lex("c:\\path\\$FOO").unwrap(), "c:\\path\\foo");
    }

    /// docker's documented example: `ENV FOO=/bar` then `WORKDIR ${FOO}` etc.
    #[test]
    fn documented_substitution_examples() {
        let lookup = |n: &str| (n == "FOO").then(|| "/bar".to_string());
        let lex = |w: &str| process_word(w, '\\', &lookup).unwrap();
        assert_eq!(lex("${FOO}"), "/bar");
        assert_eq!(lex("$FOO"), "/bar");
        assert_eq!(lex("\\$FOO"), "$FOO");
        assert_eq!(lex("${FOO}/baz"), "/bar/baz");
        assert_eq!(lex("${variable:-word}"), "word");
        assert_eq!(lex("${FOO:+word}"), "word");
    }
}
