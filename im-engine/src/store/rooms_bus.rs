//! The room bus: this process's delivery of room events to the streams
//! open here that watch a room.
//!
//! A room's message is stored once and reaches no feed: after it commits,
//! the engine hands one [`RoomEvent`] (its data encoded once) to
//! [`Store::publish_room`](super::Store::publish_room); a store shared by
//! many processes carries it to the others, each of which follows a room
//! once (one pub/sub subscription per room per process, whatever the
//! number of its streams watching it) and hands the same `Arc` to every
//! stream here through [`RoomBus::deliver`]. A stream that falls more than
//! [`ROOM_BACKLOG`] events behind skips the oldest (the stream tells its
//! client which messages it skipped; history has them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use crate::data::{GroupId, Seq, UserId};

/// Room events one stream may have waiting before the oldest are skipped.
pub const ROOM_BACKLOG: usize = 1024;

/// One live event of a room, as every stream watching it gets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomEvent {
    /// The room.
    pub room: GroupId,
    /// `message`, `edit`, `delete` or `reaction`; `typing` (a signal, not
    /// stored); `left` when a member left (its streams stop watching the
    /// room).
    pub event: String,
    /// The seq of the message it is about (0 for `typing` and `left`).
    pub seq: Seq,
    /// For `left`, who left; for `typing`, who types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserId>,
    /// The event's `data`, JSON on one line, encoded once.
    pub data: String,
    /// The event as one Server-Sent Events frame (`event:` and `data:`
    /// lines, no `id:`), built once per process by [`RoomBus::deliver`] and
    /// shared by every stream.
    #[serde(skip)]
    frame: Arc<str>,
}

impl RoomEvent {
    /// An event of `room`; see the fields.
    pub fn new(room: GroupId, event: &str, seq: Seq, user: Option<UserId>, data: String) -> Self {
        Self {
            room,
            event: event.to_owned(),
            seq,
            user,
            data,
            frame: Arc::from(""),
        }
    }

    /// The event as one Server-Sent Events frame, the same bytes for every
    /// stream (empty until the bus delivered it).
    pub fn frame(&self) -> &Arc<str> {
        &self.frame
    }

    /// Whether this is a new message (what the push strategy paces).
    pub fn is_message(&self) -> bool {
        self.event == "message"
    }
}

/// What a store following rooms for this process is told: `(room, true)`
/// when the first stream here watches it, `(room, false)` when the last
/// stops.
pub type Follows = mpsc::UnboundedReceiver<(GroupId, bool)>;

#[derive(Debug, Default)]
struct Inner {
    rooms: HashMap<GroupId, broadcast::Sender<Arc<RoomEvent>>>,
    follower: Option<mpsc::UnboundedSender<(GroupId, bool)>>,
}

/// Per-room channels of room events, shared by a store and its streams.
#[derive(Debug, Clone, Default)]
pub struct RoomBus {
    inner: Arc<Mutex<Inner>>,
}

impl RoomBus {
    /// A bus with no subscriber.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tells the store from now on which rooms this process watches: the
    /// receiver gets every room watched already, then each change.
    pub fn follows(&self) -> Follows {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut inner = self.lock();
        for room in inner.rooms.keys() {
            let _ = tx.send((room.clone(), true));
        }
        inner.follower = Some(tx);
        rx
    }

    /// The rooms some stream here watches.
    pub fn followed(&self) -> Vec<GroupId> {
        self.lock().rooms.keys().cloned().collect()
    }

    /// Subscribes one stream to `room`.
    pub fn subscribe(&self, room: &GroupId) -> RoomReceiver {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let tx = inner.rooms.entry(room.clone()).or_insert_with(|| {
            if let Some(f) = &inner.follower {
                let _ = f.send((room.clone(), true));
            }
            broadcast::channel(ROOM_BACKLOG).0
        });
        RoomReceiver {
            rx: tx.subscribe(),
            room: room.clone(),
            bus: self.clone(),
        }
    }

    /// Hands `event` to every stream here watching its room, its frame
    /// encoded once for all of them.
    pub fn deliver(&self, mut event: RoomEvent) {
        let inner = self.lock();
        if let Some(tx) = inner.rooms.get(&event.room) {
            event.frame = Arc::from(format!("event: {}\ndata: {}\n\n", event.event, event.data));
            let _ = tx.send(Arc::new(event));
        }
    }

    /// How many rooms some stream here watches (for tests).
    pub fn rooms(&self) -> usize {
        self.lock().rooms.len()
    }

    fn release(&self, room: &GroupId) {
        let mut inner = self.lock();
        // Counted before the receiver is dropped: 1 is the last one.
        if inner
            .rooms
            .get(room)
            .is_some_and(|tx| tx.receiver_count() <= 1)
        {
            inner.rooms.remove(room);
            if let Some(f) = &inner.follower {
                let _ = f.send((room.clone(), false));
            }
        }
    }
}

/// One stream's subscription to a room: its events from the moment it
/// subscribed. Dropping the last of a room here stops following it.
#[derive(Debug)]
pub struct RoomReceiver {
    rx: broadcast::Receiver<Arc<RoomEvent>>,
    room: GroupId,
    bus: RoomBus,
}

impl RoomReceiver {
    /// The room.
    pub fn room(&self) -> &GroupId {
        &self.room
    }

    /// The next event: `Err(n)` when `n` were skipped (the stream was
    /// [`ROOM_BACKLOG`] behind), `None` never while subscribed.
    pub async fn recv(&mut self) -> Option<Result<Arc<RoomEvent>, u64>> {
        match self.rx.recv().await {
            Ok(e) => Some(Ok(e)),
            Err(broadcast::error::RecvError::Lagged(n)) => Some(Err(n)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// The next event if one is waiting, as [`RoomReceiver::recv`].
    pub fn try_recv(&mut self) -> Option<Result<Arc<RoomEvent>, u64>> {
        match self.rx.try_recv() {
            Ok(e) => Some(Ok(e)),
            Err(broadcast::error::TryRecvError::Lagged(n)) => Some(Err(n)),
            Err(_) => None,
        }
    }
}

impl Drop for RoomReceiver {
    fn drop(&mut self) {
        self.bus.release(&self.room);
    }
}
