//! `cargo run --release --features ssr --bin reliability -- <part> [options]`
//!
//! The reliability campaign, run against the real murmur binary started as
//! a separate process (`server.rs`), on SQLite and/or PostgreSQL. Each part
//! is bounded (in requests and in time), prints a markdown report and exits
//! non-zero when one of its checks fails.
//!
//! Parts:
//! - `fuzz` (`fuzz.rs`): bad inputs over every public route (REST from the
//!   OpenAPI description, every server function, page GETs, the widget
//!   socket's frames, malformed raw HTTP); checks 0 panics, 0 responses 5xx,
//!   0 cross-app reads or writes, memory growth < 50 MiB, `/healthz` < 50 ms.
//!
//! Options (all parts):
//! - `--murmur PATH`: the server binary (default `target/release/murmur`);
//! - `--backend sqlite|postgres|both` (default `both`);
//! - `--requests N` (fuzz: default 200,000); `--concurrency C` (default 48);
//! - `--max-seconds S`: a bound on each backend's run (default 1,800);
//! - `--seed N`: the generator's seed (default: from the clock; printed).
//!
//! `RELIABILITY_SERVER_CPUS=0` runs murmur on those CPUs only (`taskset`);
//! run this program with `taskset -c 1` to keep the load off them.
//!
//! PostgreSQL is reached through `RELIABILITY_PG_ADMIN` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); each run creates a
//! database `murmur_rel_<random>` and drops it at the end.

mod fuzz;
mod server;
// The sign-in and overload parts (`signin.rs`, `overload.rs`).
mod overload;
mod signin;

use std::{collections::HashMap, path::PathBuf, process::ExitCode};

use server::Backend;

/// Parsed command line: the part, and `--name value` options.
pub struct Args {
    pub part: String,
    opts: HashMap<String, String>,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let mut it = std::env::args().skip(1);
        let mut part = None;
        let mut opts = HashMap::new();
        while let Some(a) = it.next() {
            if let Some(name) = a.strip_prefix("--") {
                if name == "help" {
                    return Err(String::new());
                }
                let v = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
                opts.insert(name.to_string(), v);
            } else if part.is_none() {
                part = Some(a);
            } else {
                return Err(format!("unexpected argument {a:?}"));
            }
        }
        Ok(Args { part: part.unwrap_or_else(|| "fuzz".into()), opts })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.opts.get(name).map(String::as_str)
    }

    pub fn number(&self, name: &str, default: u64) -> Result<u64, String> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.replace(['_', ','], "").parse().map_err(|_| format!("--{name} must be a number, not {v:?}")),
        }
    }

    pub fn murmur(&self) -> PathBuf {
        self.get("murmur").map(PathBuf::from).unwrap_or_else(|| server::repo_root().join("target/release/murmur"))
    }

    pub fn backends(&self) -> Result<Vec<Backend>, String> {
        Backend::parse_list(self.get("backend").unwrap_or("both"))
    }
}

const USAGE: &str = "usage: reliability [fuzz] [--backend sqlite|postgres|both] [--requests N] \
[--concurrency C] [--max-seconds S] [--seed N] [--murmur PATH]";

fn main() -> ExitCode {
    let args = match Args::parse() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("reliability: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    let outcome = rt.block_on(async {
        match args.part.as_str() {
            "fuzz" => fuzz::run(&args).await,
            "signin" => signin::run(&args).await,
            "overload" => overload::run(&args).await,
            other => Err(format!("unknown part {other:?}\n{USAGE}")),
        }
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("reliability: some checks FAILED (see the report above)");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("reliability: {e}");
            ExitCode::from(2)
        }
    }
}
