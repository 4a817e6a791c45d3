//! Pull and push progress from berthd's `Progress` stream: on a terminal, one bar per layer with
//! bytes and speed (docker's look); otherwise one line per status change of a layer; with `-q`,
//! nothing. Also the status words berthd sends, and what they read as.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, IsTerminal, Write};

use anyhow::{bail, Result};
use berth_proto::images::{Image, Progress};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use ttrpc::r#async::ClientStreamReceiver;

use crate::humanize;
use crate::reference::{repository_path, short_id, split_name};

/// The words of `Progress.status` that berthd sends. Unknown words are shown as they are.
pub mod status {
    /// The reference is being resolved (`id` empty, `message` the normalised reference).
    pub const RESOLVING: &str = "resolving";
    /// A blob waits for a transfer slot.
    pub const WAITING: &str = "waiting";
    /// Bytes of a blob arriving (`current` of `total`).
    pub const DOWNLOADING: &str = "downloading";
    /// Bytes of a blob leaving for the registry (`current` of `total`).
    pub const UPLOADING: &str = "uploading";
    /// The blob is already there (the content store on pull, the registry on push).
    pub const EXISTS: &str = "exists";
    /// A layer being unpacked into its snapshot (`current` of `total` compressed bytes read).
    pub const EXTRACTING: &str = "extracting";
    /// The blob is finished: downloaded and unpacked, or pushed.
    pub const DONE: &str = "done";
    /// The blob failed (`message` says why); the stream then ends with an error status.
    pub const ERROR: &str = "error";
    /// Final message of a pull that fetched or unpacked something.
    pub const DOWNLOADED: &str = "downloaded";
    /// Final message of a pull that found everything already present.
    pub const UP_TO_DATE: &str = "up-to-date";
}

/// Which transfer the stream belongs to: docker words a finished layer differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Pull,
    Push,
}

/// What a transfer stream ended with.
pub struct Outcome {
    /// The image record from the final (`done`) message.
    pub image: Image,
    /// The final message's status (`downloaded`, `up-to-date`, or whatever berthd sent).
    pub status: String,
    /// Whether any blob was downloaded or unpacked, for when the final status says nothing.
    pub transferred: bool,
}

/// Reads `stream` to its final message, showing progress on the way.
pub async fn follow(stream: &mut ClientStreamReceiver<Progress>, direction: Direction, quiet: bool) -> Result<Outcome> {
    let mut view = View::new(direction, quiet);
    let mut transferred = false;
    let result = loop {
        let progress = match stream.recv().await {
            Ok(Some(progress)) => progress,
            Ok(None) => break Err(anyhow::anyhow!("berthd ended the transfer without a result")),
            Err(err) => break Err(err.into()),
        };
        if progress.done {
            break Ok(Outcome {
                image: progress.image.clone().unwrap_or_default(),
                status: progress.status,
                transferred,
            });
        }
        transferred |= [status::DOWNLOADING, status::UPLOADING, status::EXTRACTING].contains(&progress.status.as_str());
        if let Err(err) = view.show(&progress) {
            break Err(err.into());
        }
    };
    view.finish();
    result
}

/// Docker's word for a status.
fn label(direction: Direction, status: &str) -> String {
    let word = match (direction, status) {
        (_, status::RESOLVING) => "Resolving",
        (_, status::WAITING) => "Waiting",
        (_, status::DOWNLOADING) => "Downloading",
        (_, status::UPLOADING) => "Pushing",
        (Direction::Pull, status::EXISTS) => "Already exists",
        (Direction::Push, status::EXISTS) => "Layer already exists",
        (_, status::EXTRACTING) => "Extracting",
        (Direction::Pull, status::DONE) => "Pull complete",
        (Direction::Push, status::DONE) => "Pushed",
        (_, status::ERROR) => "Error",
        (_, other) => return capitalise(other),
    };
    word.to_string()
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

/// Statuses whose `current`/`total` count bytes.
fn counts_bytes(status: &str) -> bool {
    [status::DOWNLOADING, status::UPLOADING, status::EXTRACTING].contains(&status)
}

/// The line for a message about the whole image (empty `id`), e.g. docker's
/// `latest: Pulling from library/busybox`.
fn image_line(direction: Direction, progress: &Progress) -> String {
    if progress.status == status::RESOLVING && !progress.message.is_empty() {
        let (repository, tag, digest) = split_name(&progress.message);
        return match direction {
            Direction::Pull => {
                format!("{}: Pulling from {}", tag.or(digest).unwrap_or("latest"), repository_path(repository))
            }
            Direction::Push => format!("The push refers to repository [{repository}]"),
        };
    }
    let label = label(direction, &progress.status);
    if progress.message.is_empty() {
        label
    } else {
        format!("{label}: {}", progress.message)
    }
}

/// The plain line for a layer's status change: `0123456789ab: Downloading 1.2MB/2.4MB`.
fn layer_line(direction: Direction, progress: &Progress) -> String {
    let mut line = format!("{}: {}", short_id(&progress.id), label(direction, &progress.status));
    if counts_bytes(&progress.status) && progress.total > 0 {
        let (current, total) = (progress.current as f64, progress.total as f64);
        line.push_str(&format!(" {}/{}", docker_size(current), docker_size(total)));
    }
    if !progress.message.is_empty() {
        line.push_str(&format!(": {}", progress.message));
    }
    line
}

enum View {
    Bars(Box<Bars>),
    Lines(Lines),
    Quiet,
}

impl View {
    /// Bars when both stdout and stderr are terminals (bars draw on stderr), plain lines on stdout
    /// otherwise, nothing with `-q`.
    fn new(direction: Direction, quiet: bool) -> View {
        if quiet {
            View::Quiet
        } else if io::stdout().is_terminal() && io::stderr().is_terminal() {
            View::Bars(Box::new(Bars::new(direction)))
        } else {
            View::Lines(Lines { direction, last_status: HashMap::new() })
        }
    }

    fn show(&mut self, progress: &Progress) -> io::Result<()> {
        match self {
            View::Bars(bars) => bars.show(progress),
            View::Lines(lines) => lines.show(progress),
            View::Quiet => Ok(()),
        }
    }

    /// Leaves unfinished bars where they stopped, so an error below them reads in context.
    fn finish(&mut self) {
        if let View::Bars(bars) = self {
            for layer in bars.layers.values() {
                if !layer.bar.is_finished() {
                    layer.bar.abandon();
                }
            }
        }
    }
}

struct Lines {
    direction: Direction,
    /// Per layer id, the last status printed: a line is printed only when it changes.
    last_status: HashMap<String, String>,
}

impl Lines {
    fn show(&mut self, progress: &Progress) -> io::Result<()> {
        match self.line_for(progress) {
            Some(line) => writeln!(io::stdout().lock(), "{line}"),
            None => Ok(()),
        }
    }

    /// The line to print for `progress`, if its layer's status changed.
    fn line_for(&mut self, progress: &Progress) -> Option<String> {
        if self.last_status.get(&progress.id) == Some(&progress.status) {
            return None;
        }
        self.last_status.insert(progress.id.clone(), progress.status.clone());
        Some(if progress.id.is_empty() {
            image_line(self.direction, progress)
        } else {
            layer_line(self.direction, progress)
        })
    }
}

struct Bars {
    direction: Direction,
    multi: MultiProgress,
    layers: HashMap<String, LayerBar>,
    styles: Styles,
}

struct LayerBar {
    bar: ProgressBar,
    status: String,
}

struct Styles {
    /// `0123456789ab: Downloading [=====>     ] 12.3MB/45.6MB 4.5MB/s`
    bytes_of_total: ProgressStyle,
    /// `0123456789ab: Downloading 12.3MB 4.5MB/s` (total unknown)
    bytes: ProgressStyle,
    /// `0123456789ab: Pull complete`
    text: ProgressStyle,
}

impl Styles {
    fn new() -> Styles {
        let template = |t: &str| {
            ProgressStyle::with_template(t)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .with_key("size", |state: &ProgressState, w: &mut dyn fmt::Write| {
                    let _ = w.write_str(&docker_size(state.pos() as f64));
                })
                .with_key("total", |state: &ProgressState, w: &mut dyn fmt::Write| {
                    let _ = w.write_str(&docker_size(state.len().unwrap_or(0) as f64));
                })
                .with_key("speed", |state: &ProgressState, w: &mut dyn fmt::Write| {
                    let _ = write!(w, "{}/s", docker_size(state.per_sec()));
                })
        };
        Styles {
            bytes_of_total: template("{prefix}: {msg} [{bar:50}] {size}/{total} {speed}").progress_chars("=> "),
            bytes: template("{prefix}: {msg} {size} {speed}"),
            text: template("{prefix}: {msg}"),
        }
    }
}

/// Bytes as docker's progress shows them (`12.3MB`).
fn docker_size(bytes: f64) -> String {
    humanize::size(bytes.clamp(0.0, i64::MAX as f64) as i64, 3)
}

impl Bars {
    fn new(direction: Direction) -> Bars {
        Bars {
            direction,
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            layers: HashMap::new(),
            styles: Styles::new(),
        }
    }

    fn show(&mut self, progress: &Progress) -> io::Result<()> {
        if progress.id.is_empty() {
            return self.multi.println(image_line(self.direction, progress));
        }
        let layer = self.layers.entry(progress.id.clone()).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(0).with_style(self.styles.text.clone()));
            bar.set_prefix(short_id(&progress.id).to_string());
            LayerBar { bar, status: String::new() }
        });
        let label = label(self.direction, &progress.status);
        let changed = layer.status != progress.status;
        if changed {
            layer.status = progress.status.clone();
            // Speed and position start over for each phase (download, then extraction).
            layer.bar.reset();
        }
        let bytes_style = || if progress.total > 0 { &self.styles.bytes_of_total } else { &self.styles.bytes };
        match progress.status.as_str() {
            status::DONE | status::EXISTS => {
                layer.bar.set_style(self.styles.text.clone());
                layer.bar.finish_with_message(label);
            }
            status::ERROR => {
                layer.bar.set_style(self.styles.text.clone());
                layer.bar.abandon_with_message(format!("{label}: {}", progress.message));
            }
            s if counts_bytes(s) => {
                if changed {
                    layer.bar.set_style(bytes_style().clone());
                    layer.bar.set_message(label);
                }
                layer.bar.set_length(u64::try_from(progress.total).unwrap_or(0));
                layer.bar.set_position(u64::try_from(progress.current).unwrap_or(0));
            }
            _ => {
                if changed {
                    layer.bar.set_style(self.styles.text.clone());
                    layer.bar.set_message(label);
                }
            }
        }
        Ok(())
    }
}

/// The name the transfer ended with: the final message's image, else the name as typed.
pub fn final_name(outcome: &Outcome, typed: &str) -> Result<String> {
    match (&outcome.image.name, typed) {
        (name, _) if !name.is_empty() => Ok(name.clone()),
        (_, typed) if !typed.is_empty() => Ok(typed.to_string()),
        _ => bail!("berthd's final progress message names no image"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYER: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn layer_lines_use_docker_words_short_ids_and_byte_totals() {
        assert_eq!(
            layer_line(Direction::Pull, &progress(LAYER, "downloading", 1234, "")),
            "0123456789ab: Downloading 0B/1.23kB"
        );
        let mut halfway = progress(LAYER, "downloading", 2_400_000, "");
        halfway.current = 1_200_000;
        assert_eq!(layer_line(Direction::Pull, &halfway), "0123456789ab: Downloading 1.2MB/2.4MB");
        assert_eq!(layer_line(Direction::Pull, &progress(LAYER, "done", 0, "")), "0123456789ab: Pull complete");
        assert_eq!(layer_line(Direction::Push, &progress(LAYER, "done", 0, "")), "0123456789ab: Pushed");
        assert_eq!(
            layer_line(Direction::Push, &progress(LAYER, "exists", 0, "")),
            "0123456789ab: Layer already exists"
        );
        assert_eq!(layer_line(Direction::Pull, &progress(LAYER, "error", 0, "EOF")), "0123456789ab: Error: EOF");
        assert_eq!(layer_line(Direction::Pull, &progress(LAYER, "verifying", 0, "")), "0123456789ab: Verifying");
    }

    #[test]
    fn resolving_reads_like_dockers_pulling_from_line() {
        let resolving = progress("", "resolving", 0, "docker.io/library/busybox:latest");
        assert_eq!(image_line(Direction::Pull, &resolving), "latest: Pulling from library/busybox");
        let local = progress("", "resolving", 0, "localhost:5000/app:1.0");
        assert_eq!(image_line(Direction::Pull, &local), "1.0: Pulling from app");
        assert_eq!(image_line(Direction::Push, &local), "The push refers to repository [localhost:5000/app]");
    }

    #[test]
    fn lines_are_printed_once_per_status_change() {
        let mut lines = Lines { direction: Direction::Pull, last_status: HashMap::new() };
        let printed: Vec<String> = [
            progress(LAYER, "downloading", 10, ""),
            progress(LAYER, "downloading", 10, ""),
            progress(LAYER, "extracting", 10, ""),
            progress(LAYER, "done", 0, ""),
        ]
        .iter()
        .filter_map(|p| lines.line_for(p))
        .collect();
        assert_eq!(
            printed,
            ["0123456789ab: Downloading 0B/10B", "0123456789ab: Extracting 0B/10B", "0123456789ab: Pull complete"]
        );
    }

    fn progress(id: &str, status: &str, total: i64, message: &str) -> Progress {
        Progress {
            id: id.to_string(),
            status: status.to_string(),
            total,
            message: message.to_string(),
            ..Default::default()
        }
    }
}
