//! berthd: serves berth's ttrpc API (content, images, transfers, snapshots, events) on
//! `<state>/berthd.sock`.

use std::process::ExitCode;

use clap::Parser;

use berthd::config::{Args, Config};

fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = match Config::resolve(args) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("berthd: {e:#}");
            return ExitCode::from(2);
        }
    };
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| cfg.log_level.clone());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        // Colour only on a terminal: a redirected log stays plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Two workers: the daemon is mostly idle; layer downloads and unpacks are I/O and blocking
    // work (unpack, hashing) runs on the blocking pool.
    berthd::memory::limit_arenas();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .thread_keep_alive(berthd::memory::BLOCKING_KEEP_ALIVE)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berthd: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(berthd::daemon::run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("berthd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
