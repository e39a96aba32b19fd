//! Measures `Store::send` throughput of `SledStore` under each durability
//! policy, next to sled's plain "insert then flush" rate as the ceiling for
//! one writer that waits for its own flush, and the latency of one send to a
//! group of 10,000 members.
//!
//! ```text
//! cargo run --release -p im-store-sled --example send_throughput [seconds per run]
//! ```
//!
//! Figures depend on the disk: fsync latency bounds `Flush` with one sender.

use std::sync::Arc;
use std::time::{Duration, Instant};

use im_engine::store::{FeedTrim, Outgoing, Recipients};
use im_engine::{Body, ConversationId, NewMessage, Store, UserId};
use im_store_sled::{Durability, SledConfig, SledStore};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn user(name: String) -> UserId {
    UserId::new(name).expect("valid user id")
}

fn direct_message(sender: usize, n: u64) -> Outgoing {
    let (a, b) = (user(format!("a{sender}")), user(format!("b{sender}")));
    let conversation = ConversationId::direct(a.clone(), b.clone()).expect("two users");
    Outgoing {
        message: NewMessage {
            conversation,
            from: a.clone(),
            ts: 1_700_000_000_000 + n,
            body: Body::new(
                r#"{"text": "a message of about sixty bytes, like most chat"}"#,
                1024,
            )
            .expect("valid body"),
            client_id: Some(format!("c{n}")),
            reply_to: None,
        },
        recipients: Recipients::Users(vec![a, b]),
        trim: FeedTrim::default(),
    }
}

/// Messages per second with `senders` concurrent tasks for `secs`.
async fn sends_per_second(durability: Durability, senders: usize, secs: f64) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SledStore::open(
        SledConfig::new(dir.path()).durability(durability),
    )?);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let tasks: Vec<_> = (0..senders)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    store.send(&direct_message(i, n)).await?;
                    n += 1;
                }
                Ok::<_, im_store_sled::Error>(n)
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// sled alone: one writer inserting a message-sized value and flushing.
fn plain_sled_flushes_per_second(secs: f64) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let db = sled::open(dir.path())?;
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut n = 0u64;
    while Instant::now() < deadline {
        db.insert(n.to_be_bytes(), &[b'x'; 200][..])?;
        db.flush()?;
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Milliseconds per send to a group of `members`, durable, over `rounds`.
async fn group_send_ms(members: usize, rounds: u64) -> Result<Vec<f64>> {
    let dir = tempfile::tempdir()?;
    let store = SledStore::open(SledConfig::new(dir.path()))?;
    let recipients: Vec<_> = (0..members).map(|i| user(format!("m{i}"))).collect();
    let mut out = Vec::new();
    for n in 0..rounds {
        let send = Outgoing {
            message: NewMessage {
                conversation: "group:big".parse()?,
                from: recipients[0].clone(),
                ts: 1_700_000_000_000 + n,
                body: Body::new(r#"{"text": "hello, everyone"}"#, 1024)?,
                client_id: None,
                reply_to: None,
            },
            recipients: Recipients::Users(recipients.clone()),
            trim: FeedTrim {
                keep: 100_000,
                min_ts: 0,
            },
        };
        let start = Instant::now();
        store.send(&send).await?;
        out.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> Result<()> {
    let secs: f64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(3.0);
    println!("each run lasts {secs} s; 2 DM participants per message");
    let periodic = Durability::Periodic { every_ms: 500 };
    for (name, durability, senders) in [
        ("Flush,    1 sender  ", Durability::Flush, 1),
        ("Flush,   64 senders ", Durability::Flush, 64),
        ("Periodic, 1 sender  ", periodic, 1),
        ("Periodic,64 senders ", periodic, 64),
    ] {
        let rate = sends_per_second(durability, senders, secs).await?;
        println!("{name}: {rate:>9.0} msgs/s");
    }
    let ceiling =
        tokio::task::spawn_blocking(move || plain_sled_flushes_per_second(secs)).await??;
    println!(
        "sled insert+flush per write (1 writer): {ceiling:>9.0} writes/s (ceiling for Flush with 1 sender)"
    );
    let times = group_send_ms(10_000, 5).await?;
    let shown: Vec<_> = times.iter().map(|t| format!("{t:.1}")).collect();
    println!(
        "one durable send to 10,000 members: {} ms",
        shown.join(", ")
    );
    Ok(())
}
