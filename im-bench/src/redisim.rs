//! The seed peer: redisim 0.0.5 (PyPI), whose Lua scripts this engine's
//! Redis store grew from, sending on the same `redis-server` in the same
//! run. `scripts/deps/bench/redisim.sh` installs it into a virtual environment
//! and names that environment's python in `IM_BENCH_REDISIM_PYTHON`;
//! `peer/redisim_peer.py` drives its `send` (DM) and `gsend` (100-member
//! group) scripts with 1 and 50 asyncio tasks. Without it the rows say the
//! peer is unavailable, and why.

use std::collections::BTreeMap;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use crate::redis_bench::Deployment;
use crate::report::{Report, Row};

/// The environment variable naming the python that has redisim.
const PYTHON: &str = "IM_BENCH_REDISIM_PYTHON";
const DRIVER: &str = include_str!("../peer/redisim_peer.py");
const PEER: &str = "redisim 0.0.5 (Python, Lua scripts)";

/// Messages per second by shape (`dm`, `group`), then task count.
type Rates = BTreeMap<String, BTreeMap<String, f64>>;

async fn measure(d: &Deployment, secs: f64) -> Result<Rates, String> {
    let python = std::env::var(PYTHON)
        .map_err(|_| format!("{PYTHON} is not set (scripts/bench installs redisim and sets it)"))?;
    let mut child = tokio::process::Command::new(&python)
        .args(["-", "--url", &d.url, "--secs", &secs.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not run {python}: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped");
    stdin
        .write_all(DRIVER.as_bytes())
        .await
        .map_err(|e| format!("could not hand the driver to {python}: {e}"))?;
    drop(stdin);
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("{python}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the driver failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("the driver's answer: {e}"))
}

/// The peer's rows, then ours beside them: after the engine's rows on
/// `d`, which must be the single server.
pub async fn run(report: &mut Report, d: &Deployment, secs: f64) {
    let rates = match measure(d, secs).await {
        Ok(rates) => rates,
        Err(why) => {
            eprintln!("the redisim rows are unavailable: {why}");
            report.rows.push(Row::plain(
                format!("{PEER} on {}: unavailable ({why})", d.name),
                0.0,
                "",
            ));
            return;
        }
    };
    let rate = |shape: &str, tasks: &str| rates.get(shape).and_then(|r| r.get(tasks)).copied();
    for (shape, name) in [("dm", "DM"), ("group", "100-member group")] {
        for tasks in ["1", "50"] {
            if let Some(v) = rate(shape, tasks) {
                report.rows.push(Row::plain(
                    format!("{PEER}, {}, {name}, {tasks} task(s)", d.name),
                    v,
                    "msgs/s",
                ));
            }
        }
    }
    // Ours with 64 senders beside the peer's 50 tasks, and 1 beside 1.
    for (shape, name, target) in [("dm", "DM", None), ("group", "100-member group", Some(2.5))] {
        for (senders, tasks) in [(1, "1"), (64, "50")] {
            let ours = format!("engine send, {}, {name}, {senders} sender(s)", d.name);
            let (Some(ours), Some(peer)) = (
                report
                    .rows
                    .iter()
                    .find(|r| r.figure == ours)
                    .map(|r| r.value),
                rate(shape, tasks),
            ) else {
                continue;
            };
            let mut row = Row::against(
                format!(
                    "engine send vs redisim, {}, {name}, {senders} sender(s)",
                    d.name
                ),
                ours,
                "msgs/s",
                peer,
                format!("{PEER}, {tasks} task(s)"),
            );
            if let (Some(t), 64) = (target, senders) {
                row = row.target(format!("≥ {t}× redisim"), ours >= t * peer);
            }
            report.rows.push(row);
        }
    }
}
