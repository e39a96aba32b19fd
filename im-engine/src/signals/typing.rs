//! Typing: `POST …/typing`, forwarded at most once per second per user and
//! conversation, and ended by the server when a `true` is not repeated.
//!
//! A user's typing state lives in the process that took its request, in a
//! table with one entry per typing user and conversation. A request is
//! forwarded at once when the last forward of that entry is at least
//! [`TYPING_EVERY`] old (a repeated `true` too, so a client that expires
//! `true` by itself after [`TYPING_HOLD`] stays in step); a change inside
//! that second waits for its end, the latest value winning. A `true` not
//! repeated for [`TYPING_HOLD`] is followed by a `false`. One timer task
//! per entry does the waiting, and the entry goes when nothing is left to
//! do. Nothing is written to the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::data::{ConversationId, Signal, UserId};
use crate::engine::{Actor, Engine, Inner};
use crate::error::Error;
use crate::store::Store;

/// How long a `true` holds unless repeated.
pub const TYPING_HOLD: Duration = Duration::from_secs(6);

/// At most one typing signal per user and conversation in this time.
pub const TYPING_EVERY: Duration = Duration::from_secs(1);

type Key = (UserId, ConversationId);

/// The typing users of this process.
#[derive(Debug, Default)]
pub(crate) struct TypingTable {
    entries: Mutex<HashMap<Key, Typer>>,
}

#[derive(Debug)]
struct Typer {
    /// The value last forwarded, and when.
    sent: Option<(bool, Instant)>,
    /// A change to forward at the end of the current second.
    pending: Option<bool>,
    /// When a `true` ends unless repeated.
    expires: Instant,
    /// Who gets this entry's signals.
    to: Vec<UserId>,
    /// Whether a timer task serves this entry.
    timer: bool,
    /// Wakes the timer when a request changes what it waits for.
    changed: Arc<Notify>,
}

impl Typer {
    /// When the timer has something to do next, if ever.
    fn next(&self) -> Option<Instant> {
        let (value, at) = self.sent?;
        let second = at + TYPING_EVERY;
        match (value, self.pending) {
            (_, Some(_)) => Some(second),
            (true, None) => Some(self.expires),
            // Kept to its second's end, so a `true` cannot follow at once.
            (false, None) => (Instant::now() < second).then_some(second),
        }
    }

    /// What to forward at `now`, recording it as sent.
    fn due(&mut self, now: Instant) -> Option<bool> {
        let (value, at) = self.sent?;
        let out = match self.pending {
            Some(p) if now >= at + TYPING_EVERY => {
                self.pending = None;
                (p != value).then_some(p)
            }
            Some(_) => None,
            None => (value && now >= self.expires).then_some(false),
        };
        if let Some(v) = out {
            self.sent = Some((v, now));
        }
        out
    }
}

impl TypingTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Typer>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a request; answers what to forward now and whether the
    /// entry needs a timer task started.
    fn request(&self, key: &Key, typing: bool, to: Vec<UserId>) -> (Option<bool>, bool) {
        let now = Instant::now();
        let mut entries = self.lock();
        let e = entries.entry(key.clone()).or_insert_with(|| Typer {
            sent: None,
            pending: None,
            expires: now,
            to: Vec::new(),
            timer: false,
            changed: Arc::default(),
        });
        e.to = to;
        if typing {
            e.expires = now + TYPING_HOLD;
        }
        let last = e.sent.map(|(v, _)| v).unwrap_or(false);
        let second_over = e.sent.is_none_or(|(_, at)| now >= at + TYPING_EVERY);
        let mut out = None;
        if second_over {
            e.pending = None;
            if typing || last {
                e.sent = Some((typing, now));
                out = Some(typing);
            }
        } else {
            e.pending = (typing != last).then_some(typing);
        }
        let start = !e.timer && e.next().is_some();
        e.timer |= start;
        e.changed.notify_one();
        if !e.timer && e.next().is_none() {
            entries.remove(key);
        }
        (out, start)
    }
}

impl<S: Store> Engine<S> {
    /// The actor starts (`true`) or stops typing in `conversation`: the
    /// other participants' open streams get `event: typing` (policy rule
    /// 5: participants only; no admin stands in).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Forbidden`] for a non-participant,
    /// [`Error::Store`].
    pub async fn typing(
        &self,
        actor: &Actor,
        conversation: &ConversationId,
        typing: bool,
    ) -> Result<(), Error> {
        self.require_taking_part(actor, conversation).await?;
        // A room's typing goes to the streams watching the room, not to a
        // list of its (up to a million) members.
        let to = match conversation {
            ConversationId::Room(_) => Vec::new(),
            _ => self
                .others(conversation, &actor.user, usize::MAX)
                .await?
                .unwrap_or_default(),
        };
        let key = (actor.user.clone(), conversation.clone());
        let (now, start) = self.inner.typing.request(&key, typing, to.clone());
        if start {
            // The timer holds no engine while it sleeps, so that it keeps
            // none alive (`Engine::try_into_store`).
            let engine = Arc::downgrade(&self.inner);
            let key = key.clone();
            tokio::spawn(typing_timer(engine, key));
        }
        match now {
            Some(typing) => self.forward_typing(to, &key, typing).await,
            None => Ok(()),
        }
    }

    /// Forwards one typing signal: to `to`'s streams, or in a room to the
    /// streams watching it.
    async fn forward_typing(&self, to: Vec<UserId>, key: &Key, typing: bool) -> Result<(), Error> {
        match &key.1 {
            ConversationId::Room(room) => {
                self.publish_room_typing(room, &key.0, typing).await;
                Ok(())
            }
            _ => self.publish(to, typing_signal(key, typing)).await,
        }
    }
}

/// Serves one entry of the typing table until it has nothing to do, or the
/// engine is gone.
async fn typing_timer<S: Store>(engine: Weak<Inner<S>>, key: Key) {
    loop {
        let (wake, changed) = {
            let Some(inner) = engine.upgrade() else {
                return;
            };
            let mut entries = inner.typing.lock();
            let Some(e) = entries.get_mut(&key) else {
                return;
            };
            match e.next() {
                Some(at) => (at, Arc::clone(&e.changed)),
                None => {
                    entries.remove(&key);
                    return;
                }
            }
        };
        tokio::select! {
            () = tokio::time::sleep_until(wake) => {}
            () = changed.notified() => continue,
        }
        let Some(inner) = engine.upgrade() else {
            return;
        };
        let due = {
            let mut entries = inner.typing.lock();
            let Some(e) = entries.get_mut(&key) else {
                return;
            };
            e.due(Instant::now()).map(|v| (e.to.clone(), v))
        };
        if let Some((to, typing)) = due {
            // Nobody waits for this answer; a lost signal is only late news.
            let engine = Engine { inner };
            let _ = engine.forward_typing(to, &key, typing).await;
        }
    }
}

fn typing_signal((user, conversation): &Key, typing: bool) -> Signal {
    Signal::Typing {
        conversation: conversation.clone(),
        user: user.clone(),
        typing,
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;

    use futures_util::StreamExt;

    use super::*;
    use crate::MemoryStore;

    /// Coalescing and expiry, on Tokio's paused clock: one signal per
    /// second at most, a change inside the second at its end, and a `false`
    /// once a `true` is not repeated for the hold.
    #[tokio::test(start_paused = true)]
    async fn typing_is_coalesced_per_second_and_ends_by_itself() {
        let engine = Engine::new(MemoryStore::new());
        let root = Actor::admin(UserId::new("root").unwrap());
        for u in ["alice", "bob"] {
            engine
                .put_user(&root, &UserId::new(u).unwrap(), Default::default())
                .await
                .unwrap();
        }
        let alice = Actor::user(UserId::new("alice").unwrap());
        let bob = Actor::user(UserId::new("bob").unwrap());
        let dm: ConversationId = "dm:alice:bob".parse().unwrap();
        let mut heard = pin!(engine.signals(&bob));
        let t0 = Instant::now();
        let ms = |at: Instant| (at - t0).as_millis();
        let at = move |n: u64| tokio::time::sleep_until(t0 + Duration::from_millis(n));

        let typer = engine.clone();
        tokio::spawn(async move {
            typer.typing(&alice, &dm, true).await.unwrap();
            at(500).await;
            typer.typing(&alice, &dm, true).await.unwrap(); // a repeat: dropped
            at(600).await;
            typer.typing(&alice, &dm, false).await.unwrap(); // waits for 1000
            at(1200).await;
            typer.typing(&alice, &dm, true).await.unwrap(); // waits for 2000
        });
        let mut got = Vec::new();
        for _ in 0..4 {
            let s = heard.next().await.unwrap();
            let Signal::Typing { typing, .. } = *s else {
                panic!("{s:?}")
            };
            got.push((ms(Instant::now()), typing));
        }
        // 2000 + the hold of 6 s: alice stopped repeating.
        assert_eq!(got, [(0, true), (1000, false), (2000, true), (7200, false)]);
        let quiet = tokio::time::timeout(Duration::from_secs(30), heard.next()).await;
        assert!(quiet.is_err(), "nothing more: {quiet:?}");
        assert!(engine.inner.typing.lock().is_empty(), "the entry is gone");
    }
}
