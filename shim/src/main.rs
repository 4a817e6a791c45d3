//! containerd-shim-berth-v2: containerd's shim v2 for berth. One process per container, started
//! by containerd (`start`), serving `containerd.task.v2.Task` over ttrpc, driving the OCI runtime
//! through runc's command line (berth-runtime by default, any runc-compatible binary through
//! the runtime options' `BinaryName`), copying stdio, reaping processes and publishing task
//! events. `delete` cleans up after a shim that died.

mod args;
mod cleanup;
mod events;
mod io;
mod log;
mod metrics;
mod mount;
mod options;
mod process;
mod reaper;
mod runtime;
mod service;
mod start;

use args::Action;

fn main() {
    let flags = match args::parse(std::env::args().skip(1)) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("containerd-shim-berth-v2: {e:#}");
            std::process::exit(2);
        }
    };
    let result = match flags.action {
        Action::Version => {
            println!("containerd-shim-berth-v2 {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Action::Start => start::start(&flags),
        Action::Delete => cleanup::delete(&flags),
        Action::Serve => start::serve(&flags),
    };
    if let Err(e) = result {
        eprintln!("containerd-shim-berth-v2: {e:#}");
        std::process::exit(1);
    }
}
