//! Packs a tree into a squashfs image with [`kiln_layers::squashfs::write`]; used by
//! `bench/squashfs.sh`.
//!
//! ```text
//! cargo run --release -p kiln-layers --example squashfs -- ROOT OUT [--threads N] [--level L]
//! ```
//!
//! Owner 0:0, normalised modes, mtimes and `mkfs_time` from `SOURCE_DATE_EPOCH` (default 0).
//! Threads default to the number of cores.

#![expect(clippy::print_stdout, clippy::print_stderr, reason = "a command-line example prints")]

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;

use kiln_layers::squashfs::{self, Options};
use kiln_reproducible::{Epoch, Policy};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("squashfs: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args_os().skip(1);
    let mut paths = Vec::new();
    let epoch = Epoch::from_env(None).map_err(|e| e.to_string())?;
    let mut options = Options::new(Policy::with_epoch(epoch));
    options.threads = std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next().and_then(|v| v.into_string().ok()).ok_or(format!("{name} needs a value"))
        };
        match arg.to_str() {
            Some("--threads") => {
                options.threads = value("--threads")?.parse().map_err(|_| "--threads needs a number ≥ 1")?;
            }
            Some("--level") => {
                options.level = value("--level")?.parse().map_err(|_| "--level needs a number")?
            }
            _ => paths.push(PathBuf::from(arg)),
        }
    }
    let [root, out] =
        <[PathBuf; 2]>::try_from(paths).map_err(|_| "usage: squashfs ROOT OUT [--threads N] [--level L]")?;
    let summary = squashfs::write(&root, &out, &options).map_err(|e| {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        message
    })?;
    println!(
        "{} bytes, {} files, {} directories, {} symlinks",
        summary.bytes, summary.files, summary.directories, summary.symlinks
    );
    Ok(())
}
