use super::*;

fn only_stage(text: &str) -> Stage {
    let mut df = parse(text).expect("parses");
    assert_eq!(df.stages.len(), 1);
    df.stages.remove(0)
}

/// The commands of a one-stage Dockerfile whose FROM is prepended.
fn commands(body: &str) -> Vec<Command> {
    only_stage(&format!("FROM scratch\n{body}")).instructions.into_iter().map(|i| i.command).collect()
}

fn command(body: &str) -> Command {
    let mut all = commands(body);
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

fn error(text: &str) -> ParseError {
    parse(text).expect_err("refused")
}

/// The error of a one-instruction body after `FROM scratch`.
fn body_error(body: &str) -> String {
    let e = error(&format!("FROM scratch\n{body}"));
    assert_eq!(e.line, 2, "{e}");
    e.message
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn expanded(body: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Command {
    let df = parse(&format!("FROM scratch\n{body}")).expect("parses");
    df.stages[0].instructions[0].expand(lookup).expect("expands").command
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn stages_hold_their_instructions_and_names() {
    let df = parse("FROM alpine:3.18 AS Build\nRUN make\n\nfrom build\ncopy --from=build /out /out\n").unwrap();
    assert_eq!(df.escape, '\\');
    assert_eq!(df.stages.len(), 2);
    let first = &df.stages[0];
    assert_eq!(first.name.as_deref(), Some("build"));
    assert_eq!(first.base, "alpine:3.18");
    assert_eq!((first.line, first.original.as_str()), (1, "FROM alpine:3.18 AS Build"));
    assert_eq!(first.instructions[0].command, Command::Run(ShellOrExec::Shell("make".into())));
    let second = &df.stages[1];
    assert_eq!((second.name.as_ref(), second.base.as_str(), second.line), (None, "build", 4));
    assert_eq!(second.instructions[0].line, 5);
    assert_eq!(second.instructions[0].original, "copy --from=build /out /out");
}

#[test]
fn from_takes_platform_and_checks_its_arguments() {
    let stage = only_stage("FROM --platform=linux/arm64 busybox as b");
    assert_eq!(stage.platform.as_deref(), Some("linux/arm64"));
    assert_eq!(stage.base, "busybox");
    assert_eq!(error("FROM").message, "FROM requires either one or three arguments");
    assert_eq!(error("FROM a b").message, "FROM requires either one or three arguments");
    assert_eq!(error("FROM a to b").message, "FROM requires either one or three arguments");
    assert_eq!(error("FROM --foo=bar a").message, "Unknown flag: foo");
}

#[test]
fn invalid_stage_names_are_refused() {
    for name in ["1st", "a$b", "-x", "a/b"] {
        assert_eq!(
            error(&format!("FROM busybox AS {name}")).message,
            format!("invalid name for build stage: \"{name}\", name can't start with a number or contain symbols")
        );
    }
    assert_eq!(only_stage("FROM busybox AS a-b_c.9").name.as_deref(), Some("a-b_c.9"));
}

#[test]
fn meta_args_come_before_the_first_from() {
    let df = parse("ARG VERSION=3.18\nARG OTHER\nFROM alpine:${VERSION}\nARG VERSION\n").unwrap();
    assert_eq!(
        df.meta_args,
        vec![
            ArgDecl { name: "VERSION".into(), default: Some("3.18".into()) },
            ArgDecl { name: "OTHER".into(), default: None }
        ]
    );
    assert_eq!(df.stages[0].base, "alpine:${VERSION}");
    let lookup = |n: &str| (n == "VERSION").then(|| "3.18".to_string());
    assert_eq!(expand_word(&df.stages[0].base, df.escape, &lookup).unwrap(), "alpine:3.18");
    assert_eq!(df.stages[0].instructions.len(), 1);
}

#[test]
fn only_args_give_no_stage() {
    let df = parse("ARG A=1\n").unwrap();
    assert!(df.stages.is_empty());
}

#[test]
fn an_instruction_before_from_is_refused() {
    let e = error("# comment\nRUN echo hi\nFROM busybox");
    assert_eq!((e.line, e.message.as_str()), (0, "no build stage in current context"));
    assert_eq!(e.to_string(), "no build stage in current context");
}

#[test]
fn files_without_instructions_are_refused() {
    for text in ["", "\n\n", "# only a comment\n", "   \n# a\n  # b"] {
        assert_eq!(error(text).message, "file with no instructions", "{text:?}");
    }
}

#[test]
fn unknown_instructions_are_refused_with_their_line() {
    let e = error("FROM busybox\n\nfoo bar\n");
    assert_eq!((e.line, e.message.as_str()), (3, "unknown instruction: FOO"));
    assert_eq!(e.to_string(), "dockerfile parse error line 3: unknown instruction: FOO");
}

#[test]
fn instruction_names_are_case_insensitive() {
    assert_eq!(
        commands("run a\nRuN b\nworkDir /x"),
        vec![
            Command::Run(ShellOrExec::Shell("a".into())),
            Command::Run(ShellOrExec::Shell("b".into())),
            Command::Workdir("/x".into())
        ]
    );
}

#[test]
fn continuation_lines_join_into_docker_original() {
    let stage = only_stage("FROM busybox\nRUN echo a && \\\n    echo b\nRUN x");
    let run = &stage.instructions[0];
    assert_eq!(run.original, "RUN echo a &&     echo b");
    assert_eq!(run.command, Command::Run(ShellOrExec::Shell("echo a &&     echo b".into())));
    assert_eq!(run.line, 2);
    assert_eq!(stage.instructions[1].line, 4);
}

#[test]
fn blanks_after_the_escape_still_continue_the_line() {
    let stage = only_stage("FROM busybox\nRUN a \\  \t\nb");
    assert_eq!(stage.instructions[0].original, "RUN a b");
}

#[test]
fn comments_and_empty_lines_inside_a_continuation_are_skipped() {
    let text = "FROM busybox\nRUN apt-get update && \\\n# a comment\n   # indented comment\n\n    \n apt-get install x\nUSER me";
    let stage = only_stage(text);
    assert_eq!(stage.instructions[0].original, "RUN apt-get update &&  apt-get install x");
    assert_eq!(stage.instructions[1].line, 8);
}

#[test]
fn a_continuation_at_the_end_of_the_file_ends_the_instruction() {
    let stage = only_stage("FROM busybox\nRUN echo hi \\");
    assert_eq!(stage.instructions[0].command, Command::Run(ShellOrExec::Shell("echo hi".into())));
}

/// A lone escape continues into the next line, whose instruction docker then places on the
/// escape's line.
#[test]
fn a_lone_escape_line_continues_into_the_next() {
    let stage = only_stage("FROM busybox\n\\\nRUN x");
    assert_eq!(stage.instructions.len(), 1);
    assert_eq!((stage.instructions[0].line, stage.instructions[0].original.as_str()), (2, "RUN x"));
}

#[test]
fn crlf_line_ends_and_a_bom_are_accepted() {
    let stage = only_stage("\u{feff}FROM busybox\r\nRUN a \\\r\n b\r\n");
    assert_eq!(stage.instructions[0].original, "RUN a  b");
}

#[test]
fn comments_and_leading_whitespace_are_ignored() {
    let stage = only_stage("  # hello\n\tFROM busybox\n   RUN x # not a comment\n");
    assert_eq!(stage.line, 2);
    assert_eq!(stage.instructions[0].command, Command::Run(ShellOrExec::Shell("x # not a comment".into())));
}

/// docker's documented escape directive example for Windows paths.
#[test]
fn escape_directive_backtick_changes_continuation_and_keeps_backslashes() {
    let df = parse("# escape=`\n\nFROM microsoft/nanoserver\nCOPY testfile.txt c:\\\nRUN dir c:\\\n").unwrap();
    assert_eq!(df.escape, '`');
    let ins = &df.stages[0].instructions;
    assert_eq!(ins.len(), 2);
    assert_eq!(
        ins[0].command,
        Command::Copy(CopyArgs {
            from: None,
            chown: None,
            chmod: None,
            sources: strings(&["testfile.txt"]),
            dest: "c:\\".into()
        })
    );
    assert_eq!(ins[1].command, Command::Run(ShellOrExec::Shell("dir c:\\".into())));
    let with_tick = parse("# escape=`\nFROM busybox\nRUN a `\n  b").unwrap();
    assert_eq!(with_tick.stages[0].instructions[0].original, "RUN a   b");
}

/// Without the directive, docker's same example continues `COPY ... c:\` into the RUN.
#[test]
fn without_escape_directive_the_windows_example_joins_lines() {
    let stage = only_stage("FROM microsoft/nanoserver\nCOPY testfile.txt c:\\\\\nRUN dir c:\\\n");
    assert_eq!(stage.instructions.len(), 1);
    assert_eq!(stage.instructions[0].original, "COPY testfile.txt c:\\RUN dir c:");
}

#[test]
fn directives_are_case_insensitive_and_spaced() {
    assert_eq!(parse("#  ESCAPE = `\nFROM a").unwrap().escape, '`');
    assert_eq!(parse("#escape=\\\nFROM a").unwrap().escape, '\\');
    let df = parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM a").unwrap();
    assert_eq!(df.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(df.escape, '`');
}

/// The documented invalid placements: after an instruction, a comment, a blank line or an
/// unknown directive, a directive is a comment.
#[test]
fn directives_after_anything_else_are_comments() {
    for text in [
        "FROM a\n# escape=`\nRUN x \\\n y",
        "# About my dockerfile\n# escape=`\nFROM a\nRUN x \\\n y",
        "\n# escape=`\nFROM a\nRUN x \\\n y",
        "# unknowndirective=value\n# escape=`\nFROM a\nRUN x \\\n y",
    ] {
        let df = parse(text).unwrap();
        assert_eq!(df.escape, '\\', "{text:?}");
        assert_eq!(df.stages[0].instructions[0].original, "RUN x  y", "{text:?}");
    }
}

#[test]
fn repeated_or_invalid_escape_directives_are_refused() {
    let e = error("# escape=\\\n# escape=`\nFROM a");
    assert_eq!((e.line, e.message.as_str()), (2, "only one escape parser directive can be used"));
    assert_eq!(error("# escape=x\nFROM a").message, "invalid ESCAPE 'x'. Must be ` or \\");
    assert_eq!(error("# syntax=a\n# syntax=b\nFROM a").message, "only one syntax parser directive can be used");
}

#[test]
fn run_cmd_entrypoint_take_json_or_shell_form() {
    assert_eq!(
        commands("RUN [\"echo\", \"a b\"]\nCMD [ \"x\" ]\nENTRYPOINT top -b\nCMD []\nENTRYPOINT"),
        vec![
            Command::Run(ShellOrExec::Exec(strings(&["echo", "a b"]))),
            Command::Cmd(ShellOrExec::Exec(strings(&["x"]))),
            Command::Entrypoint(ShellOrExec::Shell("top -b".into())),
            Command::Cmd(ShellOrExec::Exec(vec![])),
            Command::Entrypoint(ShellOrExec::Exec(vec![])),
        ]
    );
}

#[test]
fn invalid_json_falls_back_to_the_shell_form() {
    for body in ["[\"echo\", 'a']", "[echo]", "[\"a\"] extra", "[\"unterminated"] {
        assert_eq!(command(&format!("CMD {body}")), Command::Cmd(ShellOrExec::Shell(body.into())), "{body}");
    }
}

#[test]
fn json_arrays_of_non_strings_are_refused() {
    assert_eq!(
        body_error("RUN [\"echo\", 1]"),
        "when using JSON array syntax, arrays must be comprised of strings only"
    );
    assert_eq!(
        body_error("COPY [\"a\", null]"),
        "when using JSON array syntax, arrays must be comprised of strings only"
    );
}

#[test]
fn run_and_cmd_are_not_expanded() {
    let lookup = |_: &str| Some("X".to_string());
    assert_eq!(expanded("RUN echo $HOME \"q\"", &lookup), Command::Run(ShellOrExec::Shell("echo $HOME \"q\"".into())));
    assert_eq!(expanded("CMD [\"$HOME\"]", &lookup), Command::Cmd(ShellOrExec::Exec(strings(&["$HOME"]))));
}

#[test]
fn run_flags_of_buildkit_are_unknown_to_the_classic_builder() {
    assert_eq!(body_error("RUN --mount=type=cache,target=/x make"), "Unknown flag: mount");
}

#[test]
fn shell_requires_json() {
    assert_eq!(command("SHELL [\"/bin/bash\", \"-c\"]"), Command::Shell(strings(&["/bin/bash", "-c"])));
    assert_eq!(body_error("SHELL /bin/bash -c"), "SHELL requires the arguments to be in JSON form");
    assert_eq!(body_error("SHELL []"), "SHELL requires at least one argument");
    assert_eq!(body_error("SHELL"), "SHELL requires at least one argument");
}

#[test]
fn copy_and_add_take_flags_sources_and_dest() {
    assert_eq!(
        command("COPY --from=build --chown=1:2 --chmod=644 a b /dst/"),
        Command::Copy(CopyArgs {
            from: Some("build".into()),
            chown: Some("1:2".into()),
            chmod: Some("644".into()),
            sources: strings(&["a", "b"]),
            dest: "/dst/".into()
        })
    );
    assert_eq!(
        command("ADD [\"a b\", \"/c d/\"]"),
        Command::Add(CopyArgs {
            from: None,
            chown: None,
            chmod: None,
            sources: strings(&["a b"]),
            dest: "/c d/".into()
        })
    );
    assert_eq!(
        command("COPY --chown=\"a b\" x y"),
        Command::Copy(CopyArgs {
            from: None,
            chown: Some("a b".into()),
            chmod: None,
            sources: strings(&["x"]),
            dest: "y".into()
        })
    );
}

#[test]
fn copy_and_add_flag_errors_are_dockers() {
    assert_eq!(body_error("ADD --from=x a b"), "Unknown flag: from");
    assert_eq!(body_error("COPY --foo=x a b"), "Unknown flag: foo");
    assert_eq!(body_error("COPY --from a b"), "Missing a value on flag: from");
    assert_eq!(body_error("COPY --from=a --from=b a b"), "Duplicate flag specified: from");
    assert_eq!(
        body_error("COPY onlyone"),
        "COPY requires at least two arguments, but only one was provided. Destination could not be determined"
    );
    assert_eq!(
        body_error("ADD"),
        "ADD requires at least two arguments, but only one was provided. Destination could not be determined"
    );
}

#[test]
fn copy_expands_sources_dest_and_chown_but_not_from() {
    let lookup = |n: &str| match n {
        "SRC" => Some("a.txt".to_string()),
        "DIR" => Some("/app".to_string()),
        "U" => Some("1000".to_string()),
        _ => None,
    };
    assert_eq!(
        expanded("COPY --from=$U --chown=$U:$U $SRC \\$SRC ${DIR}/", &lookup),
        Command::Copy(CopyArgs {
            from: Some("$U".into()),
            chown: Some("1000:1000".into()),
            chmod: None,
            sources: strings(&["a.txt", "$SRC"]),
            dest: "/app/".into()
        })
    );
}

/// docker's documented ENV examples.
#[test]
fn env_key_value_forms_with_quotes_and_escapes() {
    let cmd = expanded("ENV MY_NAME=\"John Doe\" MY_DOG=Rex\\ The\\ Dog \\\n    MY_CAT=fluffy", &no_env);
    assert_eq!(cmd, Command::Env(pairs(&[("MY_NAME", "John Doe"), ("MY_DOG", "Rex The Dog"), ("MY_CAT", "fluffy")])));
    assert_eq!(
        expanded("ENV myName=\"John Doe\" myDog=Rex\\ The\\ Dog myCat=fluffy", &no_env),
        Command::Env(pairs(&[("myName", "John Doe"), ("myDog", "Rex The Dog"), ("myCat", "fluffy")]))
    );
}

#[test]
fn env_legacy_form_takes_the_rest_of_the_line() {
    assert_eq!(command("ENV myName John Doe"), Command::Env(pairs(&[("myName", "John Doe")])));
    assert_eq!(expanded("ENV myDog Rex The Dog", &no_env), Command::Env(pairs(&[("myDog", "Rex The Dog")])));
    assert_eq!(expanded("ENV A \"x  y\"", &no_env), Command::Env(pairs(&[("A", "x  y")])));
    assert_eq!(body_error("ENV onlykey"), "ENV must have two arguments");
}

#[test]
fn env_parse_keeps_quotes_until_expansion() {
    assert_eq!(command("ENV A=\"x y\" B='$C'"), Command::Env(pairs(&[("A", "\"x y\""), ("B", "'$C'")])));
    let lookup = |n: &str| (n == "C").then(|| "c".to_string());
    assert_eq!(
        expanded("ENV A=\"x y\" B='$C' D=$C", &lookup),
        Command::Env(pairs(&[("A", "x y"), ("B", "$C"), ("D", "c")]))
    );
}

#[test]
fn env_and_label_errors_are_dockers() {
    assert_eq!(body_error("ENV"), "ENV requires at least one argument");
    assert_eq!(body_error("LABEL"), "LABEL requires at least one argument");
    assert_eq!(body_error("ENV a=1 b"), "Syntax error - can't find = in \"b\". Must be of the form: name=value");
    assert_eq!(body_error("ENV =1"), "ENV names can not be blank");
    assert_eq!(body_error("LABEL a"), "LABEL must have two arguments");
}

/// docker's documented LABEL examples.
#[test]
fn labels_take_quotes_and_continuations() {
    let body = "LABEL \"com.example.vendor\"=\"ACME Incorporated\"\nLABEL com.example.label-with-value=\"foo\"\nLABEL version=\"1.0\"\nLABEL description=\"This text illustrates \\\nthat label-values can span multiple lines.\"\nLABEL multi.label1=\"value1\" multi.label2=\"value2\" other=\"value3\"";
    let df = parse(&format!("FROM scratch\n{body}")).unwrap();
    let labels: Vec<(String, String)> = df.stages[0]
        .instructions
        .iter()
        .flat_map(|i| match i.expand(&no_env).unwrap().command {
            Command::Label(l) => l,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        labels,
        pairs(&[
            ("com.example.vendor", "ACME Incorporated"),
            ("com.example.label-with-value", "foo"),
            ("version", "1.0"),
            ("description", "This text illustrates that label-values can span multiple lines."),
            ("multi.label1", "value1"),
            ("multi.label2", "value2"),
            ("other", "value3"),
        ])
    );
}

/// docker's documented example: variables in one ENV see the values before that instruction.
#[test]
fn env_substitution_uses_the_environment_before_the_instruction() {
    let lookup = |n: &str| (n == "abc").then(|| "hello".to_string());
    assert_eq!(expanded("ENV abc=bye def=$abc", &lookup), Command::Env(pairs(&[("abc", "bye"), ("def", "hello")])));
}

#[test]
fn args_declare_names_and_defaults() {
    assert_eq!(
        command("ARG a b=1 c=\"x y\" d="),
        Command::Arg(vec![
            ArgDecl { name: "a".into(), default: None },
            ArgDecl { name: "b".into(), default: Some("1".into()) },
            ArgDecl { name: "c".into(), default: Some("\"x y\"".into()) },
            ArgDecl { name: "d".into(), default: Some(String::new()) },
        ])
    );
    assert_eq!(
        expanded("ARG c=\"x $Y\"", &|n: &str| (n == "Y").then(|| "y".to_string())),
        Command::Arg(vec![ArgDecl { name: "c".into(), default: Some("x y".into()) }])
    );
    assert_eq!(body_error("ARG"), "ARG requires at least one argument");
    assert_eq!(body_error("ARG =x"), "ARG names can not be blank");
}

#[test]
fn single_argument_instructions() {
    assert_eq!(
        commands("WORKDIR /a b\nUSER 1000:1000\nSTOPSIGNAL SIGKILL\nMAINTAINER Jane <j@x>"),
        vec![
            Command::Workdir("/a b".into()),
            Command::User("1000:1000".into()),
            Command::StopSignal("SIGKILL".into()),
            Command::Maintainer("Jane <j@x>".into()),
        ]
    );
    for name in ["WORKDIR", "USER", "STOPSIGNAL", "MAINTAINER"] {
        assert_eq!(body_error(name), format!("{name} requires exactly one argument"));
    }
}

/// docker's documented WORKDIR example with ENV.
#[test]
fn workdir_user_stopsignal_expand() {
    let lookup = |n: &str| match n {
        "DIRPATH" => Some("/path".to_string()),
        "DIRNAME" => Some("$DIRNAME".to_string()),
        "U" => Some("app".to_string()),
        _ => None,
    };
    assert_eq!(expanded("WORKDIR $DIRPATH/$DIRNAME", &lookup), Command::Workdir("/path/$DIRNAME".into()));
    assert_eq!(expanded("USER ${U}:${G:-staff}", &lookup), Command::User("app:staff".into()));
    assert_eq!(expanded("STOPSIGNAL ${S:-SIGTERM}", &lookup), Command::StopSignal("SIGTERM".into()));
}

#[test]
fn expose_sorts_its_ports_and_volume_takes_lists() {
    assert_eq!(command("EXPOSE 80 53/udp  8000-8010"), Command::Expose(strings(&["53/udp", "80", "8000-8010"])));
    assert_eq!(command("VOLUME /a /b"), Command::Volume(strings(&["/a", "/b"])));
    assert_eq!(command("VOLUME [\"/data\", \" /x \"]"), Command::Volume(strings(&["/data", "/x"])));
    assert_eq!(body_error("EXPOSE"), "EXPOSE requires at least one argument");
    assert_eq!(body_error("VOLUME"), "VOLUME requires at least one argument");
    assert_eq!(body_error("VOLUME []"), "VOLUME requires at least one argument");
    assert_eq!(body_error("VOLUME [\"\"]"), "VOLUME specified can not be an empty string");
    let lookup = |n: &str| (n == "P").then(|| "8080".to_string());
    assert_eq!(expanded("EXPOSE $P/tcp", &lookup), Command::Expose(strings(&["8080/tcp"])));
    assert_eq!(expanded("VOLUME [\"/v/$P\"]", &lookup), Command::Volume(strings(&["/v/8080"])));
}

#[test]
fn healthcheck_none_and_cmd() {
    assert_eq!(command("HEALTHCHECK NONE"), Command::Healthcheck(Healthcheck::None));
    assert_eq!(
        command("HEALTHCHECK --interval=5m --timeout=3s --start-period=1m30s --retries=3 CMD curl -f http://localhost/ || exit 1"),
        Command::Healthcheck(Healthcheck::Check {
            test: ShellOrExec::Shell("curl -f http://localhost/ || exit 1".into()),
            interval: Some(Duration::from_secs(300)),
            timeout: Some(Duration::from_secs(3)),
            start_period: Some(Duration::from_secs(90)),
            retries: Some(3),
        })
    );
    assert_eq!(
        command("healthcheck cmd [\"/bin/check\", \"-q\"]"),
        Command::Healthcheck(Healthcheck::Check {
            test: ShellOrExec::Exec(strings(&["/bin/check", "-q"])),
            interval: None,
            timeout: None,
            start_period: None,
            retries: None,
        })
    );
}

#[test]
fn healthcheck_errors_are_dockers() {
    assert_eq!(body_error("HEALTHCHECK"), "HEALTHCHECK requires at least one argument");
    assert_eq!(body_error("HEALTHCHECK NONE x"), "HEALTHCHECK NONE takes no arguments");
    assert_eq!(body_error("HEALTHCHECK CMD"), "Missing command after HEALTHCHECK CMD");
    assert_eq!(body_error("HEALTHCHECK CMD []"), "Missing command after HEALTHCHECK CMD");
    assert_eq!(body_error("HEALTHCHECK RUN x"), "Unknown type \"RUN\" in HEALTHCHECK (try CMD)");
    assert_eq!(body_error("HEALTHCHECK --foo=1 CMD x"), "Unknown flag: foo");
    assert_eq!(body_error("HEALTHCHECK --interval=-1s CMD x"), "Interval \"interval\" cannot be less than 1ms");
    assert_eq!(body_error("HEALTHCHECK --timeout=0s CMD x"), "Interval \"timeout\" cannot be less than 1ms");
    assert_eq!(
        body_error("HEALTHCHECK --start-period=500us CMD x"),
        "Interval \"start-period\" cannot be less than 1ms"
    );
    assert_eq!(body_error("HEALTHCHECK --interval=5 CMD x"), "time: missing unit in duration \"5\"");
    assert_eq!(body_error("HEALTHCHECK --interval=5x CMD x"), "time: unknown unit \"x\" in duration \"5x\"");
    assert_eq!(body_error("HEALTHCHECK --interval=abc CMD x"), "time: invalid duration \"abc\"");
    assert_eq!(body_error("HEALTHCHECK --retries=0 CMD x"), "--retries must be at least 1 (not 0)");
    assert_eq!(body_error("HEALTHCHECK --retries=x CMD x"), "strconv.ParseInt: parsing \"x\": invalid syntax");
}

#[test]
fn go_durations_parse_like_go() {
    assert_eq!(parse_go_duration("1m30s"), Ok(90_000_000_000));
    assert_eq!(parse_go_duration("500ms"), Ok(500_000_000));
    assert_eq!(parse_go_duration("1.5h"), Ok(5_400_000_000_000));
    assert_eq!(parse_go_duration(".5s"), Ok(500_000_000));
    assert_eq!(parse_go_duration("1h2m3s4ms5us6ns"), Ok(3_723_004_005_006));
    assert_eq!(parse_go_duration("-2s"), Ok(-2_000_000_000));
    assert_eq!(parse_go_duration("0"), Ok(0));
    assert_eq!(parse_go_duration("10µs"), Ok(10_000));
    assert!(parse_go_duration("").is_err());
    assert!(parse_go_duration(".s").is_err());
    assert!(parse_go_duration("1s2").is_err());
    assert!(parse_go_duration("99999999999h").is_err());
}

#[test]
fn onbuild_stores_the_trigger_text() {
    assert_eq!(command("ONBUILD RUN echo hi"), Command::Onbuild("RUN echo hi".into()));
    assert_eq!(command("  onbuild   add . /app/src"), Command::Onbuild("add . /app/src".into()));
    assert_eq!(command("ONBUILD RUN a \\\n  b"), Command::Onbuild("RUN a   b".into()));
}

#[test]
fn onbuild_refuses_chaining_from_and_maintainer() {
    assert_eq!(body_error("ONBUILD"), "ONBUILD requires at least one argument");
    assert_eq!(body_error("ONBUILD ONBUILD RUN x"), "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
    assert_eq!(body_error("ONBUILD FROM busybox"), "FROM isn't allowed as an ONBUILD trigger");
    assert_eq!(body_error("ONBUILD maintainer me"), "MAINTAINER isn't allowed as an ONBUILD trigger");
}

#[test]
fn triggers_parse_as_one_instruction() {
    let trigger = parse_trigger("RUN echo hi").unwrap();
    assert_eq!((trigger.line, trigger.original.as_str()), (1, "RUN echo hi"));
    assert_eq!(trigger.command, Command::Run(ShellOrExec::Shell("echo hi".into())));
    assert_eq!(
        parse_trigger("COPY a b").unwrap().command,
        Command::Copy(CopyArgs { from: None, chown: None, chmod: None, sources: strings(&["a"]), dest: "b".into() })
    );
    assert_eq!(
        parse_trigger("ONBUILD RUN x").unwrap_err().message,
        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
    );
    assert_eq!(parse_trigger("FROM x").unwrap_err().message, "FROM isn't allowed as an ONBUILD trigger");
    assert_eq!(parse_trigger("MAINTAINER x").unwrap_err().message, "MAINTAINER isn't allowed as an ONBUILD trigger");
    assert_eq!(parse_trigger("FOO x").unwrap_err().message, "unknown instruction: FOO");
}

#[test]
fn flags_are_refused_on_instructions_without_any() {
    assert_eq!(body_error("WORKDIR --x=1 /a"), "Unknown flag: x");
    assert_eq!(body_error("ENV --x=1 a=b"), "Unknown flag: x");
    assert_eq!(command("ARG --x=1 a"), Command::Arg(vec![ArgDecl { name: "a".into(), default: None }]));
}

#[test]
fn a_double_dash_ends_the_flags() {
    assert_eq!(
        command("COPY -- --weird dst"),
        Command::Copy(CopyArgs {
            from: None,
            chown: None,
            chmod: None,
            sources: strings(&["--weird"]),
            dest: "dst".into()
        })
    );
}

#[test]
fn expansion_errors_carry_the_line() {
    let df = parse("FROM a\n\nWORKDIR ${x").unwrap();
    let e = df.stages[0].instructions[0].expand(&no_env).unwrap_err();
    assert_eq!(e.line, 3);
    assert_eq!(e.message, "failed to process \"${x\": missing ':' in substitution");
}

#[test]
fn expansion_uses_the_dockerfile_escape() {
    let df = parse("# escape=`\nFROM a\nWORKDIR c:\\$X\\`$Y").unwrap();
    let lookup = |n: &str| (n == "X").then(|| "x".to_string());
    let cmd = df.stages[0].instructions[0].expand(&lookup).unwrap().command;
    assert_eq!(cmd, Command::Workdir("c:\\x\\$Y".into()));
}

#[test]
fn onbuild_maintainer_and_healthcheck_are_not_expanded() {
    let lookup = |_: &str| Some("X".to_string());
    assert_eq!(expanded("ONBUILD RUN echo $A", &lookup), Command::Onbuild("RUN echo $A".into()));
    assert_eq!(expanded("MAINTAINER \"$A\"", &lookup), Command::Maintainer("\"$A\"".into()));
    assert_eq!(
        expanded("HEALTHCHECK CMD check $A", &lookup),
        Command::Healthcheck(Healthcheck::Check {
            test: ShellOrExec::Shell("check $A".into()),
            interval: None,
            timeout: None,
            start_period: None,
            retries: None,
        })
    );
}
