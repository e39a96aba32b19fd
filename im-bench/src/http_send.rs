//! HTTP send throughput and latency under wrk: im-http on memory and on
//! durable sled, against a bare hyper handler answering the same POST.

use std::process::Stdio;
use std::time::{Duration, Instant};

use im_http::Auth;
use serde::Deserialize;

use crate::Scale;
use crate::child::Server;
use crate::report::{Report, Row};
use crate::seed::uid;
use crate::server::{Kind, SECRET};

/// Keep-alive connections, as the issue sets.
const CONNECTIONS: usize = 50;
/// Direct conversations the load spreads over.
const PAIRS: usize = 50;

#[derive(Debug, Deserialize)]
struct WrkResult {
    requests: u64,
    duration_us: u64,
    p50_us: u64,
    p99_us: u64,
    non2xx: u64,
    errors: u64,
}

impl WrkResult {
    fn rate(&self) -> f64 {
        self.requests as f64 / (self.duration_us as f64 / 1e6)
    }
}

/// A wrk script posting small DMs, each request from the next sender.
fn script() -> String {
    let auth = Auth::new(SECRET);
    let mut pairs = String::new();
    for i in 0..PAIRS {
        let (a, b) = (uid(2 * i), uid(2 * i + 1));
        let token = auth.token(&a, false, None).expect("sign a token");
        pairs.push_str(&format!(
            "  {{\"/v1/conversations/dm:{a}:{b}/messages\", \"{token}\"}},\n"
        ));
    }
    format!(
        r#"local pairs = {{
{pairs}}}
local reqs = {{}}
function init(args)
  for i, p in ipairs(pairs) do
    reqs[i] = wrk.format("POST", p[1], {{["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. p[2]}}, '{{"body":{{"text":"hello"}}}}')
  end
end
local n = 0
function request()
  n = n + 1
  return reqs[(n % #reqs) + 1]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_JSON {{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"non2xx":%d,"errors":%d}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
"#
    )
}

async fn wrk(port: u16, secs: f64) -> WrkResult {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("send.lua");
    std::fs::write(&path, script()).expect("write the wrk script");
    let out = tokio::process::Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{CONNECTIONS}"),
            &format!("-d{}s", secs.ceil().max(1.0)),
            "--timeout",
            "10s",
            "-s",
        ])
        .arg(&path)
        .arg(format!("http://127.0.0.1:{port}/"))
        .stdout(Stdio::piped())
        .output()
        .await
        .expect("wrk runs (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    let json = text
        .lines()
        .find_map(|l| l.strip_prefix("WRK_JSON "))
        .unwrap_or_else(|| panic!("wrk printed no result:\n{text}"));
    let result: WrkResult = serde_json::from_str(json).expect("wrk's result");
    assert_eq!(result.errors, 0, "wrk saw socket errors");
    assert_eq!(result.non2xx, 0, "the server answered errors under load");
    result
}

/// sled's rate of one small insert flushed per write: what a store without
/// group commit would manage.
pub fn sled_flush_per_write(secs: f64) -> f64 {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = sled::open(dir.path()).expect("open sled");
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut n = 0u64;
    while Instant::now() < deadline {
        db.insert(n.to_be_bytes(), &[7u8; 100][..]).expect("insert");
        db.flush().expect("flush");
        n += 1;
    }
    n as f64 / secs
}

/// The p50 and p99 rows of one server, beside the bare handler's.
fn latencies(report: &mut Report, name: &str, r: &WrkResult, bare: &WrkResult, ceiling: &str) {
    let ms = |us: u64| us as f64 / 1000.0;
    for (q, value, ceiling_value) in [
        ("p50", r.p50_us, bare.p50_us),
        ("p99", r.p99_us, bare.p99_us),
    ] {
        let figure = format!("HTTP send {q}, {name}");
        report.add(Row::against(
            figure,
            ms(value),
            "ms",
            ms(ceiling_value),
            ceiling,
        ));
    }
}

/// One round: the bare handler, then im-http on memory, then on durable
/// sled, each under the same wrk load on a server of its own.
struct Round {
    bare: WrkResult,
    memory: WrkResult,
    sled: WrkResult,
}

async fn round(scale: &Scale) -> Round {
    let users = 2 * PAIRS;
    let bare = {
        let server = Server::start(Kind::BarePost, 0, 0, None).await;
        wrk(server.port, scale.secs).await
    };
    let memory = {
        let server = Server::start(Kind::ImMemory, users, 0, None).await;
        wrk(server.port, scale.secs).await
    };
    let sled = {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let server = Server::start(Kind::ImSled, users, 0, Some(dir.path())).await;
        wrk(server.port, scale.secs).await
    };
    Round { bare, memory, sled }
}

/// The round whose ratio `of` is the median.
fn median(rounds: &[Round], of: impl Fn(&Round) -> f64) -> &Round {
    let mut sorted: Vec<&Round> = rounds.iter().collect();
    sorted.sort_by(|a, b| of(a).total_cmp(&of(b)));
    sorted[sorted.len() / 2]
}

/// Runs the HTTP send figures: rounds of the three servers one after the
/// other, since this machine drifts by tens of percent within a run (two
/// runs of one binary gave 0.46 and 0.64 of the bare handler on memory).
/// Each figure is that of the round whose ratio to its bare handler is
/// the median, beside the same round's bare handler.
pub async fn run(report: &mut Report, scale: &Scale) {
    let mut rounds = Vec::new();
    for n in 1..=scale.http_rounds {
        let r = round(scale).await;
        eprintln!(
            "  round {n}: bare {:.0} msgs/s, memory {:.2} of it, sled {:.2}",
            r.bare.rate(),
            r.memory.rate() / r.bare.rate(),
            r.sled.rate() / r.bare.rate()
        );
        rounds.push(r);
    }
    let per_write = sled_flush_per_write(scale.secs.min(3.0));
    let ceiling = if rounds.len() > 1 {
        format!(
            "bare hyper handler, same wrk load; median of {} rounds",
            rounds.len()
        )
    } else {
        "bare hyper handler, same wrk load".to_owned()
    };
    let m = median(&rounds, |r| r.memory.rate() / r.bare.rate());
    report.add(
        Row::against(
            "HTTP send, memory store",
            m.memory.rate(),
            "msgs/s",
            m.bare.rate(),
            &ceiling,
        )
        .target("≥ 0.60 of ceiling", m.memory.rate() >= 0.6 * m.bare.rate()),
    );
    latencies(report, "memory store", &m.memory, &m.bare, &ceiling);
    let s = median(&rounds, |r| r.sled.rate() / r.bare.rate());
    report.add(
        Row::against(
            "HTTP send, sled durable",
            s.sled.rate(),
            "msgs/s",
            s.bare.rate(),
            &ceiling,
        )
        .target("≥ 0.25 of ceiling", s.sled.rate() >= 0.25 * s.bare.rate()),
    );
    report.add(
        Row::against(
            "HTTP send, sled durable (vs flush per write)",
            s.sled.rate(),
            "msgs/s",
            per_write,
            "sled insert + flush per write",
        )
        .target("≥ 4× ceiling", s.sled.rate() >= 4.0 * per_write),
    );
    latencies(report, "sled durable", &s.sled, &s.bare, &ceiling);
}
