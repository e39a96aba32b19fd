//! The feed notifications a node publishes after its sends on a single
//! Redis ("these users' feeds grew": the origin node, then the users, one
//! a line), coalesced.
//!
//! A send's script does not publish: the send hands its recipients to the
//! store's one publisher task, which takes everything handed to it while
//! its last `PUBLISH` was in flight and publishes it as one message. Alone,
//! a send's notification leaves right after its script; under load, a
//! `PUBLISH` carries the recipients of many sends, so it costs Redis (and
//! every subscribed node) a fraction of a message per send. A notification
//! lost (the process dies after the script, or Redis is down) costs latency
//! only, as a lost `PUBLISH` always did: streams recheck their feeds.

use std::collections::BTreeSet;

use im_engine::UserId;
use redis::Value;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::store::Shared;
use crate::write::payload;

/// Users named per message at most: a bound on one message's size.
const USERS_PER_MESSAGE: usize = 1024;

/// Where sends hand the users to notify.
#[derive(Debug, Clone)]
pub(crate) struct Outbox(UnboundedSender<Vec<UserId>>);

impl Outbox {
    /// An outbox and the receiver its publisher task ([`run`]) reads.
    pub(crate) fn new() -> (Self, UnboundedReceiver<Vec<UserId>>) {
        let (tx, rx) = unbounded_channel();
        (Self(tx), rx)
    }

    /// Queues a notification of `users` to the other nodes.
    pub(crate) fn post(&self, users: Vec<UserId>) {
        if !users.is_empty() {
            // Fails only once the publisher task is gone with the store.
            let _ = self.0.send(users);
        }
    }
}

/// The publisher task: publishes what was posted, coalesced, one message
/// at a time, until the store stops.
pub(crate) async fn run(s: Shared, mut posted: UnboundedReceiver<Vec<UserId>>) {
    while let Some(first) = posted.recv().await {
        let mut users: BTreeSet<UserId> = first.into_iter().collect();
        while let Ok(more) = posted.try_recv() {
            users.extend(more);
        }
        let users: Vec<UserId> = users.into_iter().collect();
        for chunk in users.chunks(USERS_PER_MESSAGE) {
            let published = s
                .bounded(async {
                    let _: Value = redis::cmd("PUBLISH")
                        .arg(s.keys.channel())
                        .arg(payload(s.node, chunk))
                        .query_async(&mut s.conn())
                        .await?;
                    Ok(())
                })
                .await;
            if let Err(e) = published {
                tracing::debug!(error = %e, "could not publish a feed notification");
            }
        }
    }
}
