//! `berth events`: berthd's events as they happen (Events.Subscribe), one line each, like
//! `docker events` / `ctr events`: time, topic, event JSON.

use std::io::{self, Write};

use anyhow::Result;
use berth_proto::system::SubscribeRequest;
use clap::Args;

use crate::daemon::{ctx, Berthd};
use crate::humanize;

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Only topics starting with this prefix (e.g. /images/); repeatable.
    #[arg(long = "filter", short = 'f', value_name = "TOPIC_PREFIX")]
    filters: Vec<String>,
    /// One JSON object per event ({"time":…,"namespace":…,"topic":…,"event":{…}}).
    #[arg(long)]
    json: bool,
}

/// Streams events until the daemon ends the stream or the user interrupts.
pub async fn run(berthd: &Berthd, args: &EventsArgs) -> Result<()> {
    let req = SubscribeRequest { filters: args.filters.clone(), ..Default::default() };
    let mut stream = berthd.events().subscribe(ctx(), &req).await?;
    while let Some(e) = stream.recv().await? {
        let mut out = io::stdout().lock();
        if args.json {
            let event: serde_json::Value =
                serde_json::from_str(&e.event).unwrap_or(serde_json::Value::String(e.event.clone()));
            let line = serde_json::json!({
                "time": e.timestamp,
                "namespace": e.namespace,
                "topic": e.topic,
                "event": event,
            });
            writeln!(out, "{line}")?;
        } else {
            writeln!(out, "{} {} {} {}", humanize::utc_timestamp(e.timestamp), e.namespace, e.topic, e.event)?;
        }
        out.flush()?;
    }
    Ok(())
}
