//! The rooms of an event stream (`GET /v1/events?rooms=…`) and their push
//! strategy.
//!
//! Every stream watching a room gets the same [`RoomEvent`], its data
//! encoded once by the node that committed it; nothing is read from the
//! store per stream. Messages are paced: with an interval of 0 each goes
//! out at once; otherwise, at each interval a stream gets the newest
//! `count` messages that arrived since its last push, oldest first, and
//! before them an `event: gap` naming the messages it skipped
//! (`{"conversation", "from_seq", "to_seq"}`, which history pages in). A
//! stream that falls [`ROOM_BACKLOG`](im_engine::store::ROOM_BACKLOG)
//! events behind skips the oldest the same way, with a gap before the next
//! message it gets: a slow client is never buffered without bound. Edits,
//! deletes and reactions are not paced: each goes out as it comes (a
//! stream that falls behind loses those it skipped; the messages as read
//! from history have them).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use futures_util::StreamExt;
use im_engine::store::{RoomEvent, RoomReceiver};
use im_engine::{ConversationId, Seq, UserId};
use tokio::time::MissedTickBehavior;

/// How a stream paces a room's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomPush {
    /// How often a stream gets a room's messages (zero: each at once).
    pub interval: Duration,
    /// The most messages of one room a stream gets per interval (the
    /// newest; the others are a gap).
    pub count: usize,
}

impl Default for RoomPush {
    fn default() -> Self {
        Self {
            interval: Duration::ZERO,
            count: 50,
        }
    }
}

/// One watched room's pace.
struct Pace {
    conversation: String,
    /// The seq of the first message this stream has neither sent nor
    /// reported skipped; unknown until the first message arrives.
    next: Option<Seq>,
    /// Messages waiting for the next push (at most `count`).
    waiting: VecDeque<Arc<RoomEvent>>,
    /// The viewer left the room: nothing more of it.
    left: bool,
}

impl Pace {
    /// The gap before message `seq`, if messages before it were skipped,
    /// then the message; moves `next` past it.
    fn send(&mut self, event: &Arc<RoomEvent>, out: &mut Vec<Bytes>) {
        let next = *self.next.get_or_insert(event.seq);
        if event.seq < next {
            return;
        }
        if event.seq > next {
            out.push(gap(&self.conversation, next, event.seq - 1));
        }
        out.push(frame(event));
        self.next = Some(event.seq + 1);
    }
}

/// The frames of the rooms of `receivers` for `viewer`'s stream, paced by
/// `push`; never ends while it watches one.
pub(crate) fn room_frames(
    receivers: Vec<RoomReceiver>,
    viewer: UserId,
    push: RoomPush,
) -> impl Stream<Item = Bytes> + Send {
    async_stream::stream! {
        if receivers.is_empty() {
            std::future::pending::<()>().await;
        }
        let mut paces: Vec<Pace> = receivers
            .iter()
            .map(|r| Pace {
                conversation: ConversationId::room(r.room().clone()).to_string(),
                next: None,
                waiting: VecDeque::new(),
                left: false,
            })
            .collect();
        let mut merged = futures_util::stream::select_all(
            receivers.into_iter().enumerate().map(|(i, mut rx)| {
                Box::pin(async_stream::stream! {
                    while let Some(item) = rx.recv().await {
                        yield (i, item);
                    }
                })
            }),
        );
        let paced = !push.interval.is_zero();
        let mut tick = tokio::time::interval(push.interval.max(Duration::from_millis(1)));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let count = push.count.max(1);
        loop {
            let mut out = Vec::new();
            tokio::select! {
                item = merged.next() => {
                    let Some((i, item)) = item else { break };
                    let pace = &mut paces[i];
                    // A skip (`Err`) shows as a gap before the next message.
                    let Ok(event) = item else { continue };
                    if pace.left {
                        continue;
                    }
                    let own = event.user.as_ref() == Some(&viewer);
                    if event.event == "left" {
                        pace.left |= own;
                    } else if event.event == "typing" && own {
                        // The others' streams show a typist, not its own.
                    } else if !event.is_message() {
                        out.push(frame(&event));
                    } else if paced {
                        pace.next.get_or_insert(event.seq);
                        pace.waiting.push_back(event);
                        if pace.waiting.len() > count {
                            pace.waiting.pop_front();
                        }
                    } else {
                        pace.send(&event, &mut out);
                    }
                }
                _ = tick.tick(), if paced => {
                    for pace in &mut paces {
                        for event in std::mem::take(&mut pace.waiting) {
                            pace.send(&event, &mut out);
                        }
                    }
                }
            }
            for f in out {
                yield f;
            }
        }
    }
}

/// A room event as an SSE frame: `event:` and one `data:` line, no `id:`
/// (rooms are not in the feed: after a reconnection a client pages
/// history). The bytes are the event's own, shared by every stream.
fn frame(event: &Arc<RoomEvent>) -> Bytes {
    Bytes::from_owner(Shared(Arc::clone(event)))
}

/// A room event's frame as the bytes of a body chunk, without a copy.
struct Shared(Arc<RoomEvent>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        self.0.frame().as_bytes()
    }
}

/// The frame of messages `from..=to` skipped.
fn gap(conversation: &str, from: Seq, to: Seq) -> Bytes {
    let data = serde_json::json!({"conversation": conversation, "from_seq": from, "to_seq": to});
    Bytes::from(format!("event: gap\ndata: {data}\n\n"))
}
