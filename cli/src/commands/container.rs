//! What the container commands share: looking a container up, the config it was created with,
//! and docker's way of acting on several containers (each name echoed on success, each failure
//! printed, status 1 if any failed).

use std::future::Future;
use std::io::{self, Write};

use anyhow::Result;
use berth_proto::container_config::CreateConfig;
use berth_proto::containers::{Container, GetContainerRequest};

use crate::daemon::{ctx, print_error, AlreadyReported, Berthd};

/// Containers.Get: by full id, unique id prefix or name.
pub async fn get(berthd: &Berthd, name: &str) -> Result<Container> {
    let request = GetContainerRequest { id: name.to_string(), ..Default::default() };
    let response = berthd.containers().get(ctx(), &request).await?;
    Ok(response.container.into_option().unwrap_or_default())
}

/// The `CreateConfig` a container record carries (a default one if it cannot be read).
pub fn create_config(container: &Container) -> CreateConfig {
    serde_json::from_slice(&container.config).unwrap_or_default()
}

/// The parts of a container's creation flags that decide how to attach to it.
pub struct CreatedWith {
    pub tty: bool,
    pub open_stdin: bool,
}

impl CreatedWith {
    pub fn of(container: &Container) -> CreatedWith {
        let config = create_config(container);
        CreatedWith { tty: config.tty, open_stdin: config.open_stdin }
    }
}

/// Runs `operation` on each name, printing the name as typed when it succeeds and berthd's
/// error when it fails; fails (already reported) if any did.
pub async fn each<F, Fut>(names: &[String], mut operation: F) -> Result<()>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let mut failed = false;
    for name in names {
        match operation(name.clone()).await {
            Ok(()) => writeln!(io::stdout(), "{name}")?,
            Err(err) => {
                print_error(&err);
                failed = true;
            }
        }
    }
    if failed {
        return Err(AlreadyReported.into());
    }
    Ok(())
}
