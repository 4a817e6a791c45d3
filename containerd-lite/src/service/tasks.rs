//! Tasks: the ttrpc adapter over `task` — attach (and run), start, kill, stop, wait, pause,
//! pids, resize, metrics, logs and exec.

use std::sync::Arc;
use std::time::Duration;

use berth_proto::container_config::ExecConfig;
use berth_proto::tasks::{
    AttachInput, AttachOutput, ExecInput, ExecOutput, KillTaskRequest, ListPidsResponse, LogEntry, LogsRequest,
    MetricsResponse, ResizeTaskRequest, StartTaskRequest, StopTaskRequest, TaskRequest, WaitTaskRequest,
    WaitTaskResponse,
};
use berth_proto::types::Empty;
use containerd_shim_protos::api;
use tokio::io::AsyncWriteExt;
use tokio::sync::broadcast::error::RecvError;
use ttrpc::asynchronous::{ServerStream, ServerStreamSender, TtrpcContext};
use ttrpc::Code;

use super::containers::lookup;
use super::{internal, invalid, one_line, status};
use crate::container::Status;
use crate::daemon::Berthd;
use crate::task::io::{Output, ProcessIo};
use crate::task::shim::ctx;
use crate::task::{exec, log, Task, Tasks};

pub struct TasksService(pub Arc<Berthd>);

const CALL: Duration = Duration::from_secs(30);

/// A start or exec failure: docker's exit code goes with the message (the CLI maps it).
fn start_error(e: anyhow::Error) -> ttrpc::Error {
    let msg = one_line(&e);
    match crate::task::exit_code_for_error(&msg) {
        127 => status(Code::NOT_FOUND, msg),
        126 => status(Code::PERMISSION_DENIED, msg),
        _ => status(Code::UNKNOWN, msg),
    }
}

fn not_running(id: &str) -> ttrpc::Error {
    status(Code::FAILED_PRECONDITION, format!("Container {id} is not running"))
}

fn live(d: &Berthd, id: &str) -> ttrpc::Result<Arc<Task>> {
    d.tasks.get(id).ok_or_else(|| not_running(id))
}

/// What a client's input message asks for: stdin bytes, its end, a resize.
async fn handle_input(task: &Task, pio: &ProcessIo, exec_id: &str, data: &[u8], close: bool, width: u32, height: u32) {
    if !data.is_empty() {
        let mut stdin = pio.stdin.lock().await;
        if let Some(w) = stdin.as_mut() {
            if let Err(e) = w.write_all(data).await {
                tracing::debug!(container = %task.id, "stdin: {e}");
                *stdin = None;
            }
        }
    }
    if close {
        *pio.stdin.lock().await = None;
        let req = api::CloseIORequest {
            id: task.id.clone(),
            exec_id: exec_id.to_string(),
            stdin: true,
            ..Default::default()
        };
        let _ = task.client.close_io(ctx(CALL), &req).await;
    }
    if width > 0 && height > 0 {
        let req = api::ResizePtyRequest {
            id: task.id.clone(),
            exec_id: exec_id.to_string(),
            width,
            height,
            ..Default::default()
        };
        let _ = task.client.resize_pty(ctx(CALL), &req).await;
    }
}

#[async_trait::async_trait]
impl berth_proto::tasks_ttrpc::Tasks for TasksService {
    async fn attach(&self, _: &TtrpcContext, mut stream: ServerStream<AttachOutput, AttachInput>) -> ttrpc::Result<()> {
        let d = self.0.clone();
        let Some(first) = stream.recv().await? else { return Ok(()) };
        let record = lookup(&d, &first.id).await?;
        let id = record.id.clone();
        let (task, (mut rx, mut done)) = if first.start {
            Tasks::clear_user_stop(&d, &id).map_err(internal)?;
            match Tasks::start(&d, &id, true).await {
                Ok((task, Some(sub))) => (task, sub),
                Ok((_, None)) => return Err(internal(anyhow::anyhow!("attach: no subscription"))),
                Err(e) => return Err(start_error(e)),
            }
        } else {
            let task = d.tasks.get(&id).ok_or_else(|| {
                status(Code::FAILED_PRECONDITION, "You cannot attach to a stopped container, start it first")
            })?;
            let sub = task.io.subscribe();
            (task, sub)
        };
        let mut exited = task.exited.subscribe();
        let want = |s: u32| if s == crate::task::io::STDERR { first.stderr } else { first.stdout };
        let hello = AttachOutput { attached: true, ..Default::default() };
        if stream.send(&hello).await.is_err() {
            return Ok(());
        }
        if first.width > 0 && first.height > 0 {
            handle_input(&task, &task.io, "", &[], false, first.width, first.height).await;
        }
        let mut input_open = true;
        loop {
            tokio::select! {
                input = stream.recv(), if input_open => match input {
                    Ok(Some(msg)) => {
                        if first.stdin || msg.width > 0 {
                            handle_input(&task, &task.io, "", &msg.data, msg.close_stdin && first.stdin, msg.width, msg.height).await;
                        }
                    }
                    // The client detached (or only closed its sending side: keep streaming).
                    Ok(None) => input_open = false,
                    Err(_) => return Ok(()),
                },
                out = rx.recv() => match out {
                    Ok(Output::Data(s, data)) => {
                        if want(s) && stream.send(&AttachOutput { data: data.to_vec(), stream: s, ..Default::default() }).await.is_err() {
                            return Ok(());
                        }
                    }
                    Err(RecvError::Lagged(n)) => tracing::warn!(container = %id, "an attached client lagged; {n} chunks dropped"),
                    Err(RecvError::Closed) => {}
                },
                _ = async { let _ = done.wait_for(|d| *d).await; } => {
                    while let Ok(Output::Data(s, data)) = rx.try_recv() {
                        if want(s) && stream.send(&AttachOutput { data: data.to_vec(), stream: s, ..Default::default() }).await.is_err() {
                            return Ok(());
                        }
                    }
                    let _ = exited.wait_for(|e| e.is_some()).await;
                    let code = (*exited.borrow()).unwrap_or(255);
                    let _ = stream.send(&AttachOutput { exited: true, exit_code: code, ..Default::default() }).await;
                    return Ok(());
                }
            }
        }
    }

    async fn start(&self, _: &TtrpcContext, req: StartTaskRequest) -> ttrpc::Result<Empty> {
        let record = lookup(&self.0, &req.id).await?;
        Tasks::clear_user_stop(&self.0, &record.id).map_err(internal)?;
        Tasks::start(&self.0, &record.id, false).await.map_err(start_error)?;
        Ok(Empty::new())
    }

    async fn kill(&self, _: &TtrpcContext, req: KillTaskRequest) -> ttrpc::Result<Empty> {
        let record = lookup(&self.0, &req.id).await?;
        if self.0.tasks.get(&record.id).is_none() {
            return Err(status(
                Code::FAILED_PRECONDITION,
                format!("Cannot kill container: {}: Container {} is not running", req.id, record.id),
            ));
        }
        let signal = if req.signal == 0 { libc::SIGKILL as u32 } else { req.signal };
        Tasks::kill(&self.0, &record.id, signal, req.all, true).await.map_err(internal)?;
        Ok(Empty::new())
    }

    async fn stop(&self, _: &TtrpcContext, req: StopTaskRequest) -> ttrpc::Result<Empty> {
        let record = lookup(&self.0, &req.id).await?;
        let timeout = (req.timeout >= 0).then(|| Duration::from_secs(req.timeout as u64));
        Tasks::stop(&self.0, &record.id, timeout).await.map_err(internal)?;
        Ok(Empty::new())
    }

    async fn wait(&self, _: &TtrpcContext, req: WaitTaskRequest) -> ttrpc::Result<WaitTaskResponse> {
        let d = self.0.clone();
        let record = lookup(&d, &req.id).await?;
        match req.condition.as_str() {
            "" | "not-running" | "next-exit" => {
                loop {
                    let code = Tasks::wait_exit(&d, &record.id, None).await;
                    // A restart policy may start it again; docker's wait returns at the first exit.
                    if code.is_some() || d.tasks.get(&record.id).is_none() {
                        break;
                    }
                }
            }
            "removed" => {
                while d.containers.get(&record.id).map_err(internal)?.is_some() {
                    let _ = Tasks::wait_exit(&d, &record.id, Some(Duration::from_millis(200))).await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                return Ok(WaitTaskResponse { exit_code: record.state.exit_code, ..Default::default() });
            }
            other => return Err(invalid(format!("invalid condition: {other:?}"))),
        }
        let after = d.containers.get(&record.id).map_err(internal)?;
        let state = after.map(|r| r.state).unwrap_or(record.state);
        Ok(WaitTaskResponse {
            exit_code: state.exit_code,
            finished_at: state.finished_at,
            error: state.error,
            ..Default::default()
        })
    }

    async fn pause(&self, _: &TtrpcContext, req: TaskRequest) -> ttrpc::Result<Empty> {
        let record = lookup(&self.0, &req.id).await?;
        Tasks::set_paused(&self.0, &record.id, true)
            .await
            .map_err(|e| status(Code::FAILED_PRECONDITION, one_line(&e)))?;
        Ok(Empty::new())
    }

    async fn resume(&self, _: &TtrpcContext, req: TaskRequest) -> ttrpc::Result<Empty> {
        let record = lookup(&self.0, &req.id).await?;
        Tasks::set_paused(&self.0, &record.id, false)
            .await
            .map_err(|e| status(Code::FAILED_PRECONDITION, one_line(&e)))?;
        Ok(Empty::new())
    }

    async fn list_pids(&self, _: &TtrpcContext, req: TaskRequest) -> ttrpc::Result<ListPidsResponse> {
        let record = lookup(&self.0, &req.id).await?;
        let task = live(&self.0, &record.id)?;
        let resp = task
            .client
            .pids(ctx(CALL), &api::PidsRequest { id: record.id.clone(), ..Default::default() })
            .await
            .map_err(|e| internal(anyhow::anyhow!("listing processes: {e}")))?;
        Ok(ListPidsResponse { pids: resp.processes.iter().map(|p| p.pid).collect(), ..Default::default() })
    }

    async fn resize(&self, _: &TtrpcContext, req: ResizeTaskRequest) -> ttrpc::Result<Empty> {
        let record = lookup(&self.0, &req.id).await?;
        let task = live(&self.0, &record.id)?;
        handle_input(&task, &task.io, &req.exec_id, &[], false, req.width, req.height).await;
        Ok(Empty::new())
    }

    async fn metrics(&self, _: &TtrpcContext, req: TaskRequest) -> ttrpc::Result<MetricsResponse> {
        let record = lookup(&self.0, &req.id).await?;
        let task = live(&self.0, &record.id)?;
        let resp = task
            .client
            .stats(ctx(CALL), &api::StatsRequest { id: record.id.clone(), ..Default::default() })
            .await
            .map_err(|e| internal(anyhow::anyhow!("reading metrics: {e}")))?;
        let any = resp.stats.into_option().ok_or_else(|| internal(anyhow::anyhow!("the shim sent no metrics")))?;
        crate::task::metrics::decode(&any.type_url, &any.value).map_err(internal)
    }

    async fn logs(
        &self,
        _: &TtrpcContext,
        req: LogsRequest,
        stream: ServerStreamSender<LogEntry>,
    ) -> ttrpc::Result<()> {
        let d = self.0.clone();
        let record = lookup(&d, &req.id).await?;
        let path = crate::container::create::log_path(&d, &record.id);
        let follow = req.follow;
        let (want_out, want_err) = if !req.stdout && !req.stderr { (true, true) } else { (req.stdout, req.stderr) };
        let keep = move |e: &log::Entry, t: i64| {
            let s_ok = if e.stream == "stderr" { want_err } else { want_out };
            s_ok && (req.since == 0 || t >= req.since) && (req.until == 0 || t <= req.until)
        };
        let send = |e: log::Entry, t: i64| {
            let stream_no = if e.stream == "stderr" { 2 } else { 1 };
            LogEntry { data: e.log.into_bytes(), stream: stream_no, time: t, ..Default::default() }
        };
        let entries = {
            let path = path.clone();
            super::blocking(move || log::read_all(&path).map_err(internal)).await?
        };
        let mut selected: Vec<(log::Entry, i64)> = entries
            .into_iter()
            .filter_map(|e| {
                let t = log::parse_time(&e.time).unwrap_or(0);
                keep(&e, t).then_some((e, t))
            })
            .collect();
        if req.tail >= 0 && (req.tail as usize) < selected.len() {
            selected.drain(..selected.len() - req.tail as usize);
        }
        for (e, t) in selected {
            if stream.send(&send(e, t)).await.is_err() {
                return Ok(());
            }
        }
        if !follow {
            return Ok(());
        }
        // Follow: new lines as they are appended, until the container stops (and its last
        // lines are read) or the client goes away.
        let mut tail = log::Follower::new(&path);
        loop {
            let running = d.tasks.get(&record.id).is_some();
            let fresh = tail.poll();
            let got = !fresh.is_empty();
            for e in fresh {
                let t = log::parse_time(&e.time).unwrap_or(0);
                if req.until != 0 && t > req.until {
                    return Ok(());
                }
                if keep(&e, t) && stream.send(&send(e, t)).await.is_err() {
                    return Ok(());
                }
            }
            if !running && !got {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn exec(&self, _: &TtrpcContext, mut stream: ServerStream<ExecOutput, ExecInput>) -> ttrpc::Result<()> {
        let d = self.0.clone();
        let Some(first) = stream.recv().await? else { return Ok(()) };
        let config: ExecConfig =
            serde_json::from_slice(&first.config).map_err(|e| invalid(format!("decoding the exec config: {e}")))?;
        let record = lookup(&d, &config.container).await?;
        let task = live(&d, &record.id)?;
        if record.state.status == Status::Paused {
            return Err(status(
                Code::FAILED_PRECONDITION,
                format!("Container {} is paused, unpause the container before exec", record.id),
            ));
        }
        let started = exec::start(&task, &record, &config).await.map_err(start_error)?;
        let exec::Exec { exec_id, io: pio, subscription: (mut rx, mut done), exit } = started;
        let hello = ExecOutput { started: true, exec_id: exec_id.clone(), ..Default::default() };
        if stream.send(&hello).await.is_err() || config.detach {
            return Ok(());
        }
        let mut input_open = true;
        loop {
            tokio::select! {
                input = stream.recv(), if input_open => match input {
                    Ok(Some(msg)) => handle_input(&task, &pio, &exec_id, &msg.data, msg.close_stdin, msg.width, msg.height).await,
                    Ok(None) => input_open = false,
                    Err(_) => return Ok(()),
                },
                out = rx.recv() => match out {
                    Ok(Output::Data(s, data)) => {
                        if stream.send(&ExecOutput { data: data.to_vec(), stream: s, ..Default::default() }).await.is_err() {
                            return Ok(());
                        }
                    }
                    Err(RecvError::Lagged(n)) => tracing::warn!(container = %record.id, "an exec client lagged; {n} chunks dropped"),
                    Err(RecvError::Closed) => {}
                },
                _ = async { let _ = done.wait_for(|d| *d).await; } => {
                    while let Ok(Output::Data(s, data)) = rx.try_recv() {
                        if stream.send(&ExecOutput { data: data.to_vec(), stream: s, ..Default::default() }).await.is_err() {
                            return Ok(());
                        }
                    }
                    let code = exit.await.unwrap_or(255);
                    let _ = stream.send(&ExecOutput { exited: true, exit_code: code, ..Default::default() }).await;
                    return Ok(());
                }
            }
        }
    }
}
