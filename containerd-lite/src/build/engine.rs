//! Running a parsed Dockerfile, docker's classic builder's way: each stage starts from its base
//! image, each instruction is one step whose result is a stored image state (manifest + config),
//! cached by what it depends on. RUN steps run as containers through berthd's own task path
//! (container create → shim → runtime) and their layer is the diff of the container's snapshot;
//! COPY/ADD/WORKDIR write their layer directly; the other instructions change only the config.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use berth_proto::build_options::BuildOptions;
use berth_proto::container_config::CreateConfig;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc::UnboundedSender;

use super::changes::{self, Target};
use super::context::{Context as BuildContext, FileHashes};
use super::copy::{self, RootView};
use super::dockerfile::{self, Command, Instruction, ShellOrExec};
use super::{cache, Invalid};
use crate::daemon::Berthd;
use crate::image::draft::{self, Draft, History, Stored};
use crate::image::{self, Descriptor, Platform};
use crate::store::lease::TransferLease;
use crate::store::meta::Image;
use crate::task::io::Output;
use crate::task::Tasks;

/// Where the build's output goes (the client's stream).
pub struct Log {
    pub tx: UnboundedSender<Vec<u8>>,
    pub quiet: bool,
}

impl Log {
    pub fn line(&self, text: impl AsRef<str>) {
        if !self.quiet {
            let _ = self.tx.send(format!("{}\n", text.as_ref()).into_bytes());
        }
    }

    fn raw(&self, data: &[u8]) {
        if !self.quiet {
            let _ = self.tx.send(data.to_vec());
        }
    }
}

/// What a finished build made.
pub struct Built {
    pub image_id: String,
    pub tags: Vec<String>,
}

/// One stage's state as its steps go.
struct Stage {
    name: Option<String>,
    draft: Draft,
    /// The stored state the next step starts from (its cache parent).
    state: Stored,
    shell: Vec<String>,
    cmd_set: bool,
    /// ARGs declared in this stage, in order, with their values.
    args: Vec<(String, Option<String>)>,
}

impl Stage {
    fn config(&self) -> &Value {
        &self.draft.config["config"]
    }

    fn env(&self) -> Vec<String> {
        self.config()["Env"]
            .as_array()
            .map(|l| l.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    }

    /// A variable as expansion sees it: ENV first, then ARGs (ENV wins over ARG, as docker's).
    fn lookup(&self, name: &str) -> Option<String> {
        let env = self.env();
        env.iter()
            .rev()
            .find_map(|e| e.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
            .or_else(|| self.args.iter().rev().find(|(k, _)| k == name).and_then(|(_, v)| v.clone()))
    }

    /// The ARGs with values, as RUN's environment and its history show them.
    fn arg_env(&self) -> Vec<String> {
        let env = self.env();
        let mut seen = HashSet::new();
        let mut out: Vec<String> = Vec::new();
        for (k, v) in self.args.iter().rev() {
            if let Some(v) = v {
                if seen.insert(k.clone()) && !env.iter().any(|e| e.split_once('=').is_some_and(|(ek, _)| ek == k)) {
                    out.push(format!("{k}={v}"));
                }
            }
        }
        out.reverse();
        out.sort();
        out
    }

    fn workdir(&self) -> String {
        self.config()["WorkingDir"].as_str().filter(|w| !w.is_empty()).unwrap_or("/").to_string()
    }
}

/// The builder of one `berth build`.
struct Builder<'a> {
    d: &'a Arc<Berthd>,
    opts: &'a BuildOptions,
    context: &'a Path,
    /// Digests of the context's files berthd already knows (a kept context).
    context_hashes: Option<Arc<FileHashes>>,
    log: &'a Log,
    lease: Arc<TransferLease>,
    platform: Platform,
    /// Build args given (NAME → value).
    build_args: BTreeMap<String, Option<String>>,
    used_args: HashSet<String>,
    /// ARGs before the first FROM, with their values.
    meta_args: Vec<(String, Option<String>)>,
    step: usize,
    total: usize,
}

/// Builds the Dockerfile of `context` (blocking work is done off the async workers).
pub async fn build(d: &Arc<Berthd>, opts: &BuildOptions, context: &BuildContext, log: &Log) -> Result<Built> {
    let (context_hashes, context) = (context.hashes(), context.path());
    let name = if opts.dockerfile.is_empty() { "Dockerfile" } else { opts.dockerfile.as_str() };
    let text = {
        let (context, name) = (context.to_path_buf(), name.to_string());
        tokio::task::spawn_blocking(move || read_dockerfile(&context, &name)).await??
    };
    let df = dockerfile::parse(&text).map_err(|e| Invalid(e.to_string()))?;
    let last = match opts.target.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => df
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(t.to_ascii_lowercase().as_str()))
            .ok_or_else(|| Invalid(format!("failed to reach build target {t} in Dockerfile")))?,
        None => df.stages.len().checked_sub(1).ok_or_else(|| Invalid("the Dockerfile has no FROM".into()))?,
    };
    let platform = match opts.platform.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => p.parse::<Platform>().map_err(|e| Invalid(format!("{e}")))?,
        None => Platform::host(),
    };
    let mut b = Builder {
        d,
        opts,
        context,
        context_hashes,
        log,
        lease: Arc::new(TransferLease::new(d, "build").await?),
        platform,
        build_args: opts.build_args.clone(),
        used_args: HashSet::new(),
        meta_args: Vec::new(),
        step: 0,
        total: df.stages[..=last].iter().map(|s| 1 + s.instructions.len()).sum(),
    };
    b.meta_args = df
        .meta_args
        .iter()
        .map(|a| {
            let value = b.arg_value(&a.name, a.default.clone());
            (a.name.clone(), value)
        })
        .collect();
    // From here on a failure is the build's own output (docker prints it without the daemon's
    // prefix), whatever it is.
    run_stages(&mut b, &df, last).await.map_err(|e| match e.downcast::<super::StepFailed>() {
        Ok(failed) => anyhow::Error::new(failed),
        Err(e) => anyhow::Error::new(super::StepFailed(crate::service::one_line(&e))),
    })
}

async fn run_stages(b: &mut Builder<'_>, df: &dockerfile::Dockerfile, last: usize) -> Result<Built> {
    let (d, opts) = (b.d, b.opts);
    let mut stages: Vec<Stage> = Vec::new();
    for def in &df.stages[..=last] {
        b.step += 1;
        b.log.line(format!("Step {}/{} : {}", b.step, b.total, def.original));
        let meta = b.meta_args.clone();
        let lookup = |name: &str| meta.iter().rev().find(|(k, _)| k == name).and_then(|(_, v)| v.clone());
        let base = dockerfile::expand_word(&def.base, df.escape, &lookup).map_err(Invalid)?;
        // `FROM --platform=P`: this stage's base for P (meta args expand in it too).
        let platform = match def.platform.as_deref().filter(|p| !p.is_empty()) {
            Some(p) => {
                let p = dockerfile::expand_word(p, df.escape, &lookup).map_err(Invalid)?;
                p.parse::<Platform>().map_err(|e| Invalid(format!("FROM --platform={p}: {e}")))?
            }
            None => b.platform.clone(),
        };
        let mut stage = b.from(&base, &stages, &platform).await?;
        stage.name = def.name.clone();
        b.log.line(format!(" ---> {}", short(&stage.state.config)));
        b.onbuild(&mut stage, &stages).await?;
        for instruction in &def.instructions {
            b.step += 1;
            b.log.line(format!("Step {}/{} : {}", b.step, b.total, instruction.original));
            b.run_step(&mut stage, instruction, &stages).await?;
        }
        stages.push(stage);
    }
    let mut last_stage = stages.pop().context("no stage was built")?;
    if !opts.labels.is_empty() {
        let config = last_stage.draft.runtime_config();
        let mut labels = config.get("Labels").and_then(Value::as_object).cloned().unwrap_or_default();
        for (k, v) in &opts.labels {
            labels.insert(k.clone(), json!(v));
        }
        config.insert("Labels".into(), Value::Object(labels));
        let draft = last_stage.draft.clone();
        last_stage.state = b.blocking(move |d, lease| draft.store(d, lease)).await?;
    }
    let unused: Vec<&String> = b.build_args.keys().filter(|k| !b.used_args.contains(*k) && !is_predefined(k)).collect();
    if !unused.is_empty() {
        let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
        b.log.line(format!("[Warning] One or more build-args [{}] were not consumed", names.join(" ")));
    }
    let stored = last_stage.state.clone();
    let tags = opts.tags.clone();
    let named = {
        let (d, tags, target) = (d.clone(), tags.clone(), stored.manifest.clone());
        tokio::task::spawn_blocking(move || draft::name_image(&d, &tags, &target)).await??
    };
    b.log.line(format!("Successfully built {}", short(&stored.config)));
    for (_, image) in named.iter().filter(|(_, i)| !draft::is_dangling_name(&i.name)) {
        let familiar =
            image::reference::Reference::parse(&image.name).map(|r| r.familiar()).unwrap_or(image.name.clone());
        b.log.line(format!("Successfully tagged {familiar}"));
    }
    Ok(Built { image_id: stored.config.to_string(), tags })
}

/// The Dockerfile `name` inside the context, never outside it.
fn read_dockerfile(context: &Path, name: &str) -> Result<String> {
    let path = copy::resolve_in(context, Path::new(name), true)?
        .ok_or_else(|| Invalid(format!("Cannot locate specified Dockerfile: {name}")))?;
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading the Dockerfile {name}"))?;
    if text.trim().is_empty() {
        return Err(Invalid(format!("the Dockerfile ({name}) cannot be empty")).into());
    }
    Ok(text)
}

/// docker's predefined build args, which never count as unused.
fn is_predefined(name: &str) -> bool {
    matches!(name.to_ascii_uppercase().as_str(), "HTTP_PROXY" | "HTTPS_PROXY" | "FTP_PROXY" | "NO_PROXY" | "ALL_PROXY")
}

fn short(digest: &crate::store::digest::Digest) -> String {
    digest.hex().chars().take(12).collect()
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl Builder<'_> {
    /// The value of ARG `name`: the build arg given, else `default`.
    fn arg_value(&mut self, name: &str, default: Option<String>) -> Option<String> {
        match self.build_args.get(name) {
            Some(v) => {
                self.used_args.insert(name.to_string());
                v.clone().or(default)
            }
            None => default,
        }
    }

    /// Blocking work, off the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Arc<Berthd>, &TransferLease) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (d, lease) = (self.d.clone(), self.lease.clone());
        tokio::task::spawn_blocking(move || f(&d, &lease)).await.context("a build task failed")?
    }

    /// FROM: a previous stage, `scratch`, or an image (pulled when missing or with `--pull`).
    async fn from(&mut self, base: &str, stages: &[Stage], platform: &Platform) -> Result<Stage> {
        let lowered = base.to_ascii_lowercase();
        if let Some(prev) = stages.iter().find(|s| s.name.as_deref() == Some(lowered.as_str())) {
            return Ok(Stage {
                name: None,
                draft: prev.draft.clone(),
                state: prev.state.clone(),
                shell: prev.shell.clone(),
                cmd_set: false,
                args: Vec::new(),
            });
        }
        let (mut draft, base_state) = if base == "scratch" {
            (Draft::scratch(platform), None)
        } else {
            let resolved = self.base_image(base, platform).await?;
            let state =
                Stored { manifest: resolved.manifest_desc.clone(), config: resolved.manifest.config.digest.clone() };
            (Draft::from_base(&resolved)?, Some(state))
        };
        // docker's builder gives every stage a PATH.
        let config = draft.runtime_config();
        let mut env: Vec<String> = config
            .get("Env")
            .and_then(Value::as_array)
            .map(|l| l.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let mut changed = base_state.is_none();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push(format!("PATH={}", crate::container::spec::DEFAULT_PATH));
            config.insert("Env".into(), json!(env));
            changed = true;
        }
        let shell = draft.config["config"]["Shell"]
            .as_array()
            .map(|l| l.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .filter(|s: &Vec<String>| !s.is_empty())
            .unwrap_or_else(changes::default_shell);
        // The base image itself is the stage's first state unless it needed a PATH.
        let stored = match base_state.filter(|_| !changed) {
            Some(state) => state,
            None => {
                let draft = draft.clone();
                self.blocking(move |d, lease| draft.store(d, lease)).await?
            }
        };
        Ok(Stage { name: None, draft, state: stored, shell, cmd_set: false, args: Vec::new() })
    }

    /// A base image, resolved for the build's platform: the local one, else (or with `--pull`)
    /// pulled.
    async fn base_image(&self, reference: &str, platform: &Platform) -> Result<image::Resolved> {
        let local = {
            let (reference, platform) = (reference.to_string(), platform.clone());
            self.blocking(move |d, _| crate::container::create::find_image(d, &reference, &platform)).await?
        };
        let image = match local {
            Some(i) if !self.opts.pull => i,
            _ => {
                let pulled =
                    crate::image::pull::pull(self.d, reference, platform, &crate::image::pull::Reporter::none())
                        .await
                        .with_context(|| format!("pulling the base image {reference}"))?;
                pulled.image
            }
        };
        let wanted = platform.clone();
        let resolved = self
            .blocking(move |d, lease| {
                let r = image::resolve(&d.content, &Descriptor::from(&image.target), &wanted)?;
                lease.protect_blocking(crate::store::meta::Resource::Content(r.manifest_desc.digest.clone()))?;
                Ok(r)
            })
            .await?;
        // A stored image of another platform is not used for this one (docker's rule).
        if !platform.matches(&resolved.platform()) {
            return Err(Invalid(format!(
                "image with reference {reference} was found but does not match the specified platform: wanted {platform}, actual: {}",
                resolved.platform()
            ))
            .into());
        }
        Ok(resolved)
    }

    /// The base image's ONBUILD triggers run first, then are dropped from the config.
    async fn onbuild(&mut self, stage: &mut Stage, stages: &[Stage]) -> Result<()> {
        let triggers: Vec<String> = stage.config()["OnBuild"]
            .as_array()
            .map(|l| l.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        if triggers.is_empty() {
            return Ok(());
        }
        self.log.line(format!(
            "# Executing {} build trigger{}",
            triggers.len(),
            if triggers.len() == 1 { "" } else { "s" }
        ));
        stage.draft.runtime_config().insert("OnBuild".into(), Value::Null);
        for trigger in triggers {
            let instruction = dockerfile::parse_trigger(&trigger).map_err(|e| Invalid(e.to_string()))?;
            Box::pin(self.run_step(stage, &instruction, stages)).await?;
        }
        Ok(())
    }

    /// One instruction: from the cache when it can, else done; the stage moves to its result.
    async fn run_step(&mut self, stage: &mut Stage, raw: &Instruction, stages: &[Stage]) -> Result<()> {
        let lookup = |name: &str| stage.lookup(name);
        let instruction = raw.expand(&lookup).map_err(|e| Invalid(e.to_string()))?;
        // ARG changes what later steps see even when the step comes from the cache.
        if let Command::Arg(decls) = &instruction.command {
            for decl in decls {
                let global = self.meta_args.iter().rev().find(|(k, _)| *k == decl.name).and_then(|(_, v)| v.clone());
                let value = self.arg_value(&decl.name, decl.default.clone().or(global));
                stage.args.push((decl.name.clone(), value));
            }
        }
        match &instruction.command {
            Command::Cmd(_) => stage.cmd_set = true,
            Command::Shell(words) => stage.shell = words.clone(),
            _ => {}
        }
        let mut copy = None;
        let mut key_extra = String::new();
        if let Command::Copy(_) | Command::Add(_) = &instruction.command {
            let job = Arc::new(self.copy_job(stage, &instruction, stages).await?);
            let j = job.clone();
            key_extra = self.blocking(move |d, _| j.sources_digest(d)).await?;
            copy = Some(job);
        }
        let key = sha256_hex(&format!(
            "{}\n{:?}\n{}\n{}\n{}",
            stage.state.manifest.digest,
            instruction.command,
            stage.arg_env().join("\n"),
            key_extra,
            self.opts.network.as_deref().unwrap_or("")
        ));
        if !self.opts.no_cache {
            if let Some(hit) = self.cached(&key).await? {
                stage.draft = hit.0;
                stage.state = hit.1;
                self.log.line(" ---> CACHED");
                self.log.line(format!(" ---> {}", short(&stage.state.config)));
                return Ok(());
            }
        }
        let created = draft::now_rfc3339();
        let nop = |text: &str| format!("/bin/sh -c #(nop)  {text}");
        match &instruction.command {
            Command::Run(cmd) => self.run(stage, cmd, &created).await?,
            Command::Copy(_) | Command::Add(_) => {
                let job = copy.context("COPY without its sources")?;
                let description = job.description(&key_extra);
                let layer = self
                    .blocking(move |d, lease| {
                        job.with_plan(d, |plan| draft::store_layer(d, lease, |out| plan.write_tar(out)))
                    })
                    .await?;
                let history = History {
                    created: created.clone(),
                    created_by: format!("/bin/sh -c #(nop) {description}"),
                    ..Default::default()
                };
                self.add_step(stage, layer, history).await?;
            }
            Command::Workdir(dir) => {
                let workdir = changes::join_workdir(&stage.workdir(), dir);
                stage.draft.runtime_config().insert("WorkingDir".into(), json!(workdir));
                let top = stage.draft.chain_top()?;
                let w = workdir.clone();
                let layer = self
                    .blocking(move |d, lease| {
                        let view = RootView::open(d, top.as_deref())?;
                        let plan = copy::workdir_plan(&w, view.path())?;
                        draft::store_layer(d, lease, |out| plan.write_tar(out))
                    })
                    .await?;
                let history = History {
                    created: created.clone(),
                    created_by: format!("/bin/sh -c #(nop) WORKDIR {workdir}"),
                    ..Default::default()
                };
                self.add_step(stage, layer, history).await?;
            }
            Command::Arg(decls) => {
                let text: Vec<String> = decls
                    .iter()
                    .map(|a| match &a.default {
                        Some(v) => format!("{}={v}", a.name),
                        None => a.name.clone(),
                    })
                    .collect();
                stage.draft.add_empty_layer(History {
                    created: created.clone(),
                    created_by: nop(&format!("ARG {}", text.join(" "))),
                    ..Default::default()
                });
            }
            _ => {
                let mut author = None;
                let mut shell = stage.shell.clone();
                let mut cmd_set = stage.cmd_set;
                changes::apply(
                    &instruction,
                    Target {
                        config: stage.draft.runtime_config(),
                        shell: &mut shell,
                        cmd_set: &mut cmd_set,
                        author: &mut author,
                    },
                )?;
                if let Some(a) = author {
                    stage.draft.config["author"] = json!(a);
                }
                let text = history_text(&instruction, &stage.shell);
                stage.draft.add_empty_layer(History {
                    created: created.clone(),
                    created_by: nop(&text),
                    ..Default::default()
                });
            }
        }
        stage.draft.config["created"] = json!(created);
        let draft = stage.draft.clone();
        let stored = self
            .blocking(move |d, lease| {
                let stored = draft.store(d, lease)?;
                cache::put(d, &key, &stored.manifest.digest)?;
                Ok(stored)
            })
            .await?;
        stage.state = stored;
        self.log.line(format!(" ---> {}", short(&stage.state.config)));
        Ok(())
    }

    /// The cached state of `key`, if it is still whole (manifest, config and layers unpacked).
    async fn cached(&self, key: &str) -> Result<Option<(Draft, Stored)>> {
        let key = key.to_string();
        let platform = self.platform.clone();
        self.blocking(move |d, lease| {
            let Some(manifest) = cache::get(d, &key)? else { return Ok(None) };
            let desc = Descriptor {
                media_type: image::OCI_MANIFEST.to_string(),
                digest: manifest.clone(),
                size: 0,
                platform: None,
                annotations: None,
                urls: None,
            };
            lease.protect_blocking(crate::store::meta::Resource::Content(manifest.clone()))?;
            let Ok(resolved) = image::resolve(&d.content, &desc, &platform) else { return Ok(None) };
            if let Some(top) = resolved.chain_ids().last() {
                if !d.snapshots.exists(&top.to_string())? {
                    return Ok(None);
                }
                lease.protect_blocking(crate::store::meta::Resource::Snapshot(top.to_string()))?;
            }
            let stored = Stored {
                manifest: Descriptor { size: resolved.manifest_bytes.len() as u64, ..desc },
                config: resolved.manifest.config.digest.clone(),
            };
            Ok(Some((Draft::from_base(&resolved)?, stored)))
        })
        .await
    }

    async fn add_step(&self, stage: &mut Stage, layer: Option<draft::NewLayer>, history: History) -> Result<()> {
        let mut draft = stage.draft.clone();
        let draft = self
            .blocking(move |d, lease| {
                draft.add_step(d, lease, layer, history)?;
                Ok(draft)
            })
            .await?;
        stage.draft = draft;
        Ok(())
    }

    /// COPY/ADD: what the step reads, ready to plan.
    async fn copy_job(&self, stage: &Stage, instruction: &Instruction, stages: &[Stage]) -> Result<CopyJob> {
        let (is_add, args) = match &instruction.command {
            Command::Add(a) => (true, a.clone()),
            Command::Copy(a) => (false, a.clone()),
            _ => return Err(Invalid(format!("{} is not a copy", instruction.original)).into()),
        };
        if is_add && args.sources.iter().any(|s| s.contains("://")) {
            return Err(Invalid(format!(
                "ADD: sources from URLs are not supported by berth: {}",
                args.sources.join(" ")
            ))
            .into());
        }
        // The source root: the context, another stage's filesystem or an image's.
        let from_chain = match args.from.as_deref() {
            None => None,
            Some(from) => {
                let by_name = stages.iter().find(|s| s.name.as_deref() == Some(from.to_ascii_lowercase().as_str()));
                let by_index = from.parse::<usize>().ok().and_then(|i| stages.get(i));
                match by_name.or(by_index) {
                    Some(s) => Some(s.draft.chain_top()?),
                    None => {
                        Some(self.base_image(from, &self.platform).await?.chain_ids().last().map(ToString::to_string))
                    }
                }
            }
        };
        Ok(CopyJob {
            context: self.context.to_path_buf(),
            context_hashes: self.context_hashes.clone(),
            from_chain,
            dest_top: stage.draft.chain_top()?,
            workdir: stage.workdir(),
            args,
            is_add,
        })
    }

    /// RUN: a container from the stage's current state, its output streamed, its exit code
    /// checked, its changes the step's layer; the container is removed in every case.
    async fn run(&self, stage: &mut Stage, cmd: &ShellOrExec, created: &str) -> Result<()> {
        let argv = changes::argv(cmd, &stage.shell);
        let args = stage.arg_env();
        let created_by = if args.is_empty() {
            argv.join(" ")
        } else {
            format!("|{} {} {}", args.len(), args.join(" "), argv.join(" "))
        };
        let config = CreateConfig {
            image: stage.state.config.to_string(),
            cmd: Some(argv.clone()),
            entrypoint: Some(Vec::new()),
            env: args,
            network: self.opts.network.clone().filter(|n| !n.is_empty()),
            labels: BTreeMap::from([(super::STEP_LABEL.to_string(), self.step.to_string())]),
            ..Default::default()
        };
        let image = Image::new(
            format!("{}@{}", draft::DANGLING_REPOSITORY, stage.state.manifest.digest),
            stage.state.manifest.target(),
        );
        let record = self.blocking(move |d, _| crate::container::create::create(d, config, &image, None)).await?;
        let id = record.id.clone();
        self.log.line(format!(" ---> Running in {}", &id[..12]));
        let outcome = self.run_container(&id).await;
        let layer = match outcome {
            Ok(0) => {
                let key = record.snapshot_key.clone();
                self.blocking(move |d, lease| draft::layer_from_snapshot(d, lease, &key)).await
            }
            Ok(code) => {
                Err(super::StepFailed(format!("The command '{}' returned a non-zero code: {code}", argv.join(" ")))
                    .into())
            }
            Err(e) => Err(e),
        };
        if let Err(e) = Tasks::remove(self.d, &id, true, true).await {
            tracing::warn!(container = id, "removing a build container: {e:#}");
        }
        self.log.line(format!("Removing intermediate container {}", &id[..12]));
        let layer = layer?;
        self.add_step(stage, layer, History { created: created.to_string(), created_by, ..Default::default() }).await
    }

    /// Starts container `id`, streams its output to the log until it ends; its exit code.
    async fn run_container(&self, id: &str) -> Result<i32> {
        let (_task, sub) = Tasks::start(self.d, id, true).await?;
        if let Some((mut rx, mut done)) = sub {
            loop {
                tokio::select! {
                    msg = rx.recv() => match msg {
                        Ok(Output::Data(_, data)) => self.log.raw(&data),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    },
                    _ = done.wait_for(|d| *d) => {
                        while let Ok(Output::Data(_, data)) = rx.try_recv() {
                            self.log.raw(&data);
                        }
                        break;
                    }
                }
            }
        }
        loop {
            let code = Tasks::wait_exit(self.d, id, None).await;
            if code.is_some() || self.d.tasks.get(id).is_none() {
                break;
            }
        }
        let record = self.d.containers.get(id)?.with_context(|| format!("build container {id} vanished"))?;
        Ok(record.state.exit_code)
    }
}

/// The text of a config instruction in the history, as docker's classic builder writes it.
fn history_text(instruction: &Instruction, shell: &[String]) -> String {
    let quoted = |argv: &[String]| format!("[{}]", argv.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(" "));
    match &instruction.command {
        Command::Cmd(c) => format!("CMD {}", quoted(&changes::argv(c, shell))),
        Command::Entrypoint(c) => format!("ENTRYPOINT {}", quoted(&changes::argv(c, shell))),
        Command::Env(pairs) => {
            format!("ENV {}", pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "))
        }
        Command::Label(pairs) => {
            format!("LABEL {}", pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "))
        }
        _ => instruction.original.clone(),
    }
}

/// A COPY or ADD, with what it needs to plan its layer (again) in a blocking task.
struct CopyJob {
    context: std::path::PathBuf,
    context_hashes: Option<Arc<FileHashes>>,
    /// `--from`: the chain top of the stage or image read (None inside: scratch).
    from_chain: Option<Option<String>>,
    dest_top: Option<String>,
    workdir: String,
    args: dockerfile::CopyArgs,
    is_add: bool,
}

impl CopyJob {
    /// The digest of what the copy reads (its cache key's part beyond the parent and the
    /// instruction, which fix where and as whom it writes): mounts only a `--from` source.
    fn sources_digest(&self, d: &Berthd) -> Result<String> {
        let source_view = match &self.from_chain {
            Some(chain) => Some(RootView::open(d, chain.as_deref())?),
            None => None,
        };
        let (root, what, hashes) = match &source_view {
            Some(v) => (v.path().to_path_buf(), "the source stage or image", None),
            None => {
                (self.context.clone(), "build context or excluded by .dockerignore", self.context_hashes.as_deref())
            }
        };
        let sources = copy::expand_sources(&root, &self.args.sources, what)?;
        copy::sources_digest(&root, &sources, hashes)
    }

    /// Mounts what the copy reads, plans it and runs `f` on the plan; unmounts after.
    fn with_plan<T>(&self, d: &Berthd, f: impl FnOnce(&copy::Plan) -> Result<T>) -> Result<T> {
        let source_view = match &self.from_chain {
            Some(chain) => Some(RootView::open(d, chain.as_deref())?),
            None => None,
        };
        let (root, what) = match &source_view {
            Some(v) => (v.path().to_path_buf(), "the source stage or image"),
            None => (self.context.clone(), "build context or excluded by .dockerignore"),
        };
        let sources = copy::expand_sources(&root, &self.args.sources, what)?;
        let dest_view = RootView::open(d, self.dest_top.as_deref())?;
        let owner = match self.args.chown.as_deref().filter(|c| !c.is_empty()) {
            Some(spec) => Some(copy::chown_ids(spec, dest_view.path())?),
            None => None,
        };
        let chmod = self.args.chmod.as_deref().map(copy::parse_chmod).transpose()?;
        let plan =
            copy::plan(&root, sources, &self.args.dest, &self.workdir, dest_view.path(), owner, chmod, self.is_add)?;
        f(&plan)
    }

    /// docker's history text: `COPY file:<digest> in /dest `.
    fn description(&self, digest: &str) -> String {
        let verb = if self.is_add { "ADD" } else { "COPY" };
        let kind = if self.args.sources.len() > 1 { "multi" } else { "file" };
        format!("{verb} {kind}:{digest} in {} ", self.args.dest)
    }
}
