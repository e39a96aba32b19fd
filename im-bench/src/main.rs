//! The benchmark suite: every figure beside a ceiling measured in the same
//! run, because this shared machine drifts by tens of percent between runs
//! and a figure only means something as a ratio to a ceiling taken minutes
//! apart. Prints a Markdown table and writes the same as JSON.
//!
//! Run it with `scripts/bench` (which installs wrk and redis-server first);
//! `--smoke` runs a seconds-long version that only checks the suite works.
//! The Redis rows start their own `redis-server` processes; without
//! `redis-server` the run fails, unless `IM_SKIP_REDIS=1` leaves them out.
//!
//! Layout: `report` (rows, table, JSON), `server` (the servers under test,
//! run as child processes by `child`), `client` (HTTP and SSE clients),
//! `seed` (test data through the store), and one module per group of
//! figures: `http_send`, `engine_send`, `fanout`, `signals`, `store_figures`;
//! `redis_bench` starts the Redis servers and measures the Redis ceiling.

mod changes;
mod child;
mod client;
mod engine_send;
mod fanout;
mod http_send;
mod redis_bench;
mod redisim;
mod report;
mod rooms;
mod seed;
mod server;
mod signals;
mod store_figures;
mod webhooks;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// How big and how long each figure runs.
#[derive(Debug, Clone)]
pub struct Scale {
    /// Seconds of load per figure.
    pub secs: f64,
    /// Rounds of the HTTP send figures (each figure is the median round's).
    pub http_rounds: usize,
    /// Seconds of each in-process send figure and of its ceiling.
    pub engine_secs: f64,
    /// Subscribers of the fan-out group.
    pub fanout_subscribers: usize,
    /// Send rates of the fan-out figure.
    pub rates: Vec<u32>,
    /// Members of the typing group, every one streaming.
    pub signal_members: usize,
    /// Typing signals per second into it.
    pub signal_rate: u32,
    /// Streams held open for the idle-memory figure.
    pub idle_streams: usize,
    /// Members of the big group.
    pub big_group: usize,
    /// Events missed before a resume.
    pub resume_events: usize,
    /// The two feed depths resumed at.
    pub depths: [usize; 2],
    /// Members of the big room.
    pub big_room: usize,
    /// Streams watching one room.
    pub room_streams: usize,
}

impl Scale {
    fn full() -> Self {
        Self {
            secs: 5.0,
            http_rounds: 3,
            engine_secs: 3.0,
            fanout_subscribers: 1000,
            rates: vec![10, 100, 500],
            signal_members: 1000,
            signal_rate: 100,
            idle_streams: 10_000,
            big_group: 10_000,
            resume_events: 10_000,
            depths: [1_000, 1_000_000],
            big_room: 100_000,
            room_streams: 10_000,
        }
    }

    fn smoke() -> Self {
        Self {
            secs: 0.5,
            http_rounds: 1,
            engine_secs: 0.25,
            fanout_subscribers: 20,
            rates: vec![20],
            signal_members: 20,
            signal_rate: 10,
            idle_streams: 50,
            big_group: 300,
            resume_events: 100,
            depths: [10, 1_000],
            big_room: 1_000,
            room_streams: 50,
        }
    }
}

#[derive(Debug, Parser)]
#[command(about = "The im-engine benchmark suite")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// A seconds-long run at tiny sizes that only checks the suite works.
    #[arg(long)]
    smoke: bool,
    /// Where to write the JSON report.
    #[arg(long, default_value = "target/bench/report.json")]
    json: PathBuf,
    /// Run only these groups: http, engine, changes, fanout, signals, webhooks,
    /// store, rooms.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve one of the servers under test (run by the suite itself).
    #[command(hide = true)]
    Server(server::ServerArgs),
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!("{cores} cores ({cpu}); load generator and servers share them")
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = tokio::runtime::Runtime::new().expect("a Tokio runtime");
    if let Some(Command::Server(args)) = cli.command {
        return match rt.block_on(server::run(args)) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("server: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let scale = if cli.smoke {
        Scale::smoke()
    } else {
        Scale::full()
    };
    let wants = |g: &str| cli.only.is_empty() || cli.only.iter().any(|o| o == g);
    let mut report = report::Report {
        machine: machine(),
        rows: Vec::new(),
    };
    eprintln!("im-bench on {}", report.machine);
    // The Redis rows need real servers; missing tools fail the run (only
    // IM_SKIP_REDIS=1 leaves the rows out).
    let servers = if wants("engine") || wants("store") || wants("changes") || wants("rooms") {
        match redis_bench::Servers::start() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("im-bench: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let redis = servers
        .as_ref()
        .map_or_else(Vec::new, |s| s.deployments().to_vec());
    rt.block_on(async {
        if wants("http") {
            eprintln!("HTTP send (wrk, 50 connections):");
            http_send::run(&mut report, &scale).await;
        }
        if wants("engine") {
            eprintln!("engine send, in process:");
            engine_send::run(&mut report, &scale, &redis).await;
        }
        if wants("changes") {
            eprintln!("edits and reactions beside sends, in process:");
            changes::run(&mut report, &scale, &redis).await;
        }
        if wants("fanout") {
            eprintln!("SSE fan-out and idle streams:");
            fanout::run(&mut report, &scale).await;
        }
        if wants("signals") {
            eprintln!("typing signals into a group, every member streaming:");
            signals::run(&mut report, &scale).await;
        }
        if wants("webhooks") {
            eprintln!("sends beside webhook delivery, in process:");
            webhooks::run(&mut report, &scale).await;
        }
        if wants("store") {
            eprintln!("big group and resume:");
            store_figures::run(&mut report, &scale, &redis).await;
        }
        if wants("rooms") {
            eprintln!("rooms: big rooms, and one room to many streams:");
            rooms::run(&mut report, &scale, &redis).await;
        }
    });
    println!("{}", report.table());
    if let Err(e) = report.write_json(&cli.json) {
        eprintln!("could not write {}: {e}", cli.json.display());
        return std::process::ExitCode::FAILURE;
    }
    eprintln!("JSON report: {}", cli.json.display());
    std::process::ExitCode::SUCCESS
}
