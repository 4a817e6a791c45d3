//! `berth wait`: Tasks.Wait for each container, printing its exit code.

use std::io::{self, Write};

use anyhow::Result;
use berth_proto::tasks::WaitTaskRequest;

use crate::daemon::{ctx, print_error, AlreadyReported, Berthd};

/// Block until one or more containers stop, then print their exit codes.
#[derive(clap::Args, Debug)]
pub struct WaitArgs {
    /// Container names or ids.
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

/// Prints one exit code per container, in order.
pub async fn run(berthd: &Berthd, args: &WaitArgs) -> Result<()> {
    let tasks = berthd.tasks();
    let mut failed = false;
    for id in &args.containers {
        match tasks.wait(ctx(), &WaitTaskRequest { id: id.clone(), ..Default::default() }).await {
            Ok(response) => writeln!(io::stdout(), "{}", response.exit_code)?,
            Err(err) => {
                print_error(&err.into());
                failed = true;
            }
        }
    }
    if failed {
        return Err(AlreadyReported.into());
    }
    Ok(())
}
