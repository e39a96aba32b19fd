//! Live signals: typing signals at a fixed rate into a group whose every
//! member streams, beside the bare SSE broadcaster fed at the same rate with
//! the same fan-out.
//!
//! A typing signal carries no time, so the bench keeps when each typer last
//! sent each value. Typers take turns, each one every 2 s or more (the
//! server forwards at most one signal per second per user and conversation,
//! so none is coalesced away), alternating `true` and `false`: every request
//! is a change and goes out at once, and a delivery of (typer, value) is that
//! pair's latest send, 4 s or more before its next.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use im_http::Auth;

use crate::Scale;
use crate::child::Server;
use crate::client::{Conn, now_us};
use crate::fanout::{Delivery, Measure, Subscribers, deliver, stamped, subscribe};
use crate::report::{Report, Row};
use crate::seed::uid;
use crate::server::{Kind, SECRET};

/// When each typer (by index) last sent `false` and `true`, µs since the
/// epoch.
type SentAt = Arc<Vec<[AtomicU64; 2]>>;

/// The text after the first `pat` in `hay`.
fn after<'a>(hay: &'a [u8], pat: &[u8]) -> Option<&'a [u8]> {
    hay.windows(pat.len())
        .position(|w| w == pat)
        .map(|i| &hay[i + pat.len()..])
}

/// The typer (`u<i>`) and value of an `event: typing` frame.
fn typing_of(frame: &[u8]) -> Option<(usize, bool)> {
    if !frame.starts_with(b"event: typing\n") {
        return None;
    }
    let user = after(frame, br#""user":"u"#)?;
    let digits = user.iter().take_while(|b| b.is_ascii_digit()).count();
    let typer = std::str::from_utf8(&user[..digits]).ok()?.parse().ok()?;
    let typing = after(frame, br#""typing":"#)?.starts_with(b"true");
    Some((typer, typing))
}

/// The latency of a typing delivery: from its (typer, value)'s latest send.
fn typing_latency(sent: SentAt) -> Measure {
    Arc::new(move |frame, now, out| {
        if let Some((typer, typing)) = typing_of(frame)
            && let Some(at) = sent.get(typer)
        {
            let t = at[usize::from(typing)].load(Ordering::Acquire);
            out.push(now.saturating_sub(t) as f64 / 1000.0);
        }
    })
}

/// Posts typing signals of `typers` users in turn at `rate` for `secs`, then
/// waits for the `members - 1` other streams of each to drain.
async fn type_in_turn(
    port: u16,
    subs: &Subscribers,
    sent: &SentAt,
    members: usize,
    rate: u32,
    secs: f64,
) -> Delivery {
    let auth = Auth::new(SECRET);
    let tokens: Vec<String> = (0..sent.len())
        .map(|i| auth.token(&uid(i), false, None).expect("token"))
        .collect();
    let mut conn = Conn::open(port).await.expect("connect the typers");
    let path = "/v1/conversations/group:g/typing";
    let start = Instant::now();
    let total = (f64::from(rate) * secs).ceil() as usize;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    for k in 0..total {
        tick.tick().await;
        let typer = k % tokens.len();
        // true on a typer's first turn, false on its second, and so on.
        let typing = (k / tokens.len()).is_multiple_of(2);
        sent[typer][usize::from(typing)].store(now_us(), Ordering::Release);
        let status = conn
            .post(path, &tokens[typer], format!(r#"{{"typing":{typing}}}"#))
            .await
            .expect("post typing");
        assert_eq!(status, 204, "a typing request answered {status}");
    }
    subs.drain((total * (members - 1)) as u64, start).await
}

/// Runs the typing fan-out figure.
pub async fn run(report: &mut Report, scale: &Scale) {
    let (n, rate) = (scale.signal_members, scale.signal_rate);
    // Each typer's turn comes every `typers / rate` seconds: 2 s or more.
    let typers = (2 * rate as usize).min(n);
    assert!(
        typers >= 2 * rate as usize,
        "{n} members cannot type at {rate}/s without coalescing"
    );
    let sent: SentAt = Arc::new((0..typers).map(|_| Default::default()).collect());
    let im = Server::start(Kind::ImMemory, n, n, None).await;
    let bare = Server::start(Kind::BareSse, 0, 0, None).await;
    // Every member streams, the typers too; a typer's signal goes to the
    // others, so the broadcaster gets as many streams as a signal reaches.
    let im_subs = subscribe(
        im.port,
        Kind::ImMemory,
        0..=n - 1,
        typing_latency(sent.clone()),
    )
    .await;
    let bare_subs = subscribe(bare.port, Kind::BareSse, 1..=n - 1, stamped()).await;
    let b = deliver(
        bare.port,
        Kind::BareSse,
        &bare_subs,
        n - 1,
        rate,
        scale.secs,
    )
    .await;
    let m = type_in_turn(im.port, &im_subs, &sent, n, rate, scale.secs).await;
    let figure = |what: &str| {
        format!("typing into a {n}-member group, all streaming, {rate}/s ({typers} typers): {what}")
    };
    let ceiling = format!("bare SSE broadcast, {} subscribers", n - 1);
    report.add(Row::against(
        figure("delivered"),
        m.per_sec,
        "events/s",
        b.per_sec,
        ceiling.clone(),
    ));
    report.add(Row::against(
        figure("p50"),
        m.p50,
        "ms",
        b.p50,
        ceiling.clone(),
    ));
    report.add(
        Row::against(figure("p99"), m.p99, "ms", b.p99, ceiling)
            .target("≤ 2× ceiling", m.p99 <= 2.0 * b.p99),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typing_frame_names_its_typer_and_value() {
        let frame = b"event: typing\ndata: {\"conversation\":\"group:g\",\"typing\":false,\"user\":\"u172\"}\n\n";
        assert_eq!(typing_of(frame), Some((172, false)));
        let frame = b"event: typing\ndata: {\"user\":\"u3\",\"typing\":true}\n\n";
        assert_eq!(typing_of(frame), Some((3, true)));
        let presence = b"event: presence\ndata: {\"user\":\"u3\",\"online\":true}\n\n";
        assert_eq!(typing_of(presence), None);
        assert_eq!(typing_of(b": keep-alive\n\n"), None);
    }
}
