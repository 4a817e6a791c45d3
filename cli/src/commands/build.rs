//! `berth build` and `berth import`: Builder.Build and Builder.ImportFilesystem. The build context
//! is made here, as docker's client makes it (`build_context`), and streamed to berthd; the
//! build's output streams back.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use berth_proto::build::{BuildInput, BuildOutput, ImportFilesystemInput};
use berth_proto::build_options::BuildOptions;
use ttrpc::asynchronous::ClientStream;
use ttrpc::Code;

use super::load::{fill, ChunkSender, CHUNK_SIZE};
use crate::build_context::{self, DirContext};
use crate::daemon::{ctx, Berthd};
use crate::exit_code::Reported;

/// Context entries per message (each well under 4 KiB: a path and a few numbers).
const ENTRIES_PER_MESSAGE: usize = 512;

/// Build an image from a Dockerfile.
#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// Name and optionally a tag in the 'name:tag' format.
    #[arg(short, long = "tag")]
    tag: Vec<String>,
    /// Name of the Dockerfile (Default is 'PATH/Dockerfile').
    #[arg(short, long)]
    file: Option<PathBuf>,
    /// Set build-time variables.
    #[arg(long = "build-arg")]
    build_arg: Vec<String>,
    /// Set the target build stage to build.
    #[arg(long)]
    target: Option<String>,
    /// Do not use cache when building the image.
    #[arg(long)]
    no_cache: bool,
    /// Always attempt to pull a newer version of the image.
    #[arg(long)]
    pull: bool,
    /// Set platform if server is multi-platform capable.
    #[arg(long)]
    platform: Option<String>,
    /// Set metadata for an image.
    #[arg(long)]
    label: Vec<String>,
    /// Suppress the build output and print image ID on success.
    #[arg(short, long)]
    quiet: bool,
    /// Set type of progress output (auto, plain, tty): berth prints the steps as plain lines in
    /// every case.
    #[arg(long, default_value = "auto", value_parser = ["auto", "plain", "tty"])]
    progress: String,
    /// Set the networking mode for the RUN instructions during build.
    #[arg(long)]
    network: Option<String>,
    /// PATH or - (a tar or a lone Dockerfile on stdin).
    context: String,
}

/// `K=V` pairs; a `K` alone takes the value from this client's environment (unset if none).
fn build_args(args: &[String]) -> BTreeMap<String, Option<String>> {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (a.clone(), std::env::var(a).ok()),
        })
        .collect()
}

fn labels(args: &[String]) -> BTreeMap<String, String> {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (a.clone(), String::new()),
        })
        .collect()
}

/// Builds; the output streams to stdout, `-q` prints only the image id. A directory context is
/// synced: its entries go first, then only the files berthd does not already have from an
/// earlier build of the same directory (as BuildKit's local context transfer); a context on
/// stdin is sent whole.
pub async fn run(berthd: &Berthd, args: &BuildArgs) -> Result<()> {
    let mut options = BuildOptions {
        tags: args.tag.clone(),
        dockerfile: String::new(),
        build_args: build_args(&args.build_arg),
        target: args.target.clone(),
        labels: labels(&args.label),
        no_cache: args.no_cache,
        pull: args.pull,
        platform: args.platform.clone(),
        network: args.network.clone(),
        quiet: args.quiet,
        context_key: None,
    };
    let stream = if args.context == "-" {
        if args.file.is_some() {
            bail!("berth build -: -f is not supported with a context on stdin");
        }
        let mut input = Vec::new();
        io::stdin().lock().read_to_end(&mut input).context("reading the context from stdin")?;
        let (tar, name) = build_context::stdin_context(input)?;
        options.dockerfile = name;
        let stream = berthd.builder().build(ctx()).await?;
        stream.send(&BuildInput { options: serde_json::to_vec(&options)?, ..Default::default() }).await?;
        for chunk in tar.chunks(CHUNK_SIZE) {
            if stream.send(&BuildInput { data: chunk.to_vec(), ..Default::default() }).await.is_err() {
                break; // berthd stopped reading: its status (below) says why.
            }
        }
        stream
    } else {
        let context = DirContext::collect(args.context.as_ref(), args.file.as_deref())?;
        options.dockerfile = context.dockerfile.clone();
        options.context_key = Some(context.key());
        let mut stream = berthd.builder().build(ctx()).await?;
        stream.send(&BuildInput { options: serde_json::to_vec(&options)?, ..Default::default() }).await?;
        send_entries(&stream, &context).await?;
        let wanted = match stream.recv().await {
            Ok(reply) if reply.context_request => reply.wanted,
            Ok(_) => bail!("berthd did not ask for the build context"),
            Err(e) => return Err(build_error(e)),
        };
        send_tar(&stream, context, wanted).await?;
        stream
    };
    stream.close_send().await?;
    let mut stream = stream;
    let mut out = io::stdout().lock();
    loop {
        match stream.recv().await {
            Ok(message) => {
                out.write_all(&message.stream)?;
                out.flush()?;
                if !message.image_id.is_empty() {
                    if args.quiet {
                        writeln!(out, "{}", message.image_id)?;
                    }
                    return Ok(());
                }
            }
            Err(e) => {
                drop(out);
                return Err(build_error(e));
            }
        }
    }
}

/// The context's entries, in messages of at most `ENTRIES_PER_MESSAGE`, the last one marked.
async fn send_entries(stream: &ClientStream<BuildInput, BuildOutput>, context: &DirContext) -> Result<()> {
    let entries: Vec<_> = context.entries.iter().map(|e| e.to_proto()).collect();
    let mut chunks = entries.chunks(ENTRIES_PER_MESSAGE).peekable();
    if chunks.peek().is_none() {
        stream.send(&BuildInput { entries_end: true, ..Default::default() }).await?;
    }
    while let Some(chunk) = chunks.next() {
        let message =
            BuildInput { entries: chunk.to_vec(), entries_end: chunks.peek().is_none(), ..Default::default() };
        stream.send(&message).await?;
    }
    Ok(())
}

/// The context tar with the `wanted` regular files, written by a blocking thread and sent in
/// `CHUNK_SIZE` messages as it is made.
async fn send_tar(stream: &ClientStream<BuildInput, BuildOutput>, context: DirContext, wanted: Vec<u32>) -> Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let writer = tokio::task::spawn_blocking(move || {
        let wanted: HashSet<usize> = wanted.into_iter().filter_map(|i| usize::try_from(i).ok()).collect();
        let mut out = ChunkSender::new(tx);
        context.write_tar(|i| wanted.contains(&i), &mut out)?;
        out.flush().context("sending the build context")
    });
    // The sender sends only data; its errors come back through `writer`.
    while let Some(Ok(chunk)) = rx.recv().await {
        if stream.send(&BuildInput { data: chunk, ..Default::default() }).await.is_err() {
            break; // berthd stopped reading: its status says why.
        }
    }
    writer.await.context("the context writer failed")??;
    Ok(())
}

/// A build's error status: a step that failed is reported as docker reports it, without the
/// daemon prefix, and the build exits with the failed command's code.
fn build_error(e: ttrpc::Error) -> anyhow::Error {
    match e {
        ttrpc::Error::RpcStatus(status) if status.code() == Code::ABORTED => {
            eprintln!("{}", status.message);
            let code = status
                .message
                .rsplit_once("non-zero code: ")
                .and_then(|(_, c)| c.trim().parse::<u8>().ok())
                .filter(|c| *c != 0)
                .unwrap_or(1);
            Reported(code).into()
        }
        e => e.into(),
    }
}

/// Import the contents from a tarball to create a filesystem image.
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image.
    #[arg(short, long = "change")]
    change: Vec<String>,
    /// Set commit message for imported image.
    #[arg(short, long, default_value = "")]
    message: String,
    /// Set platform if server is multi-platform capable.
    #[arg(long)]
    platform: Option<String>,
    /// A tar file, or - for stdin.
    file: String,
    /// REPOSITORY[:TAG] of the new image.
    reference: Option<String>,
}

/// Sends the tar and prints the new image's id, as docker.
pub async fn import(berthd: &Berthd, args: &ImportArgs) -> Result<()> {
    if args.file.contains("://") {
        bail!("berth import: importing from a URL is not supported: {}", args.file);
    }
    let mut source: Box<dyn Read> = if args.file == "-" {
        let stdin = io::stdin();
        if stdin.is_terminal() {
            bail!("requested import from stdin, but stdin is a terminal");
        }
        Box::new(stdin.lock())
    } else {
        Box::new(File::open(&args.file).with_context(|| format!("open {}: no such file or directory", args.file))?)
    };
    let mut sender = berthd.builder().import_filesystem(ctx()).await?;
    let first = ImportFilesystemInput {
        reference: args.reference.clone().unwrap_or_default(),
        changes: args.change.clone(),
        comment: args.message.clone(),
        platform: args.platform.clone().unwrap_or_default(),
        ..Default::default()
    };
    sender.send(&first).await?;
    let mut buffer = vec![0; CHUNK_SIZE];
    loop {
        let n = fill(&mut source, &mut buffer).context("reading the tar")?;
        if n == 0 {
            break;
        }
        if sender.send(&ImportFilesystemInput { data: buffer[..n].to_vec(), ..Default::default() }).await.is_err() {
            break;
        }
    }
    let response = sender.close_and_recv().await?;
    writeln!(io::stdout().lock(), "{}", response.image_id)?;
    Ok(())
}
