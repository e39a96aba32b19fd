//! Signals: typing, presence and read receipts, which go only to the event
//! streams open at the moment and are never stored.
//!
//! The engine decides who gets a signal and publishes it through
//! [`Store::publish`], which hands it to the
//! [`SignalBus`](crate::store::SignalBus) of every process sharing the
//! store; an event stream [subscribes](Engine::signals) to its user's
//! signals there.
//!
//! - `typing`: `POST …/typing`, coalesced per user and conversation.
//! - `presence`: announcing a user's first stream and its last one's close.
//! - `reads`: receipts when a read cursor moves, and `GET …/reads`.

mod presence;
mod reads;
mod typing;

use std::sync::Arc;

use futures_core::Stream;

use crate::data::{Addressed, ConversationId, Signal, UserId};
use crate::engine::{Actor, Engine};
use crate::error::Error;
use crate::store::Store;

pub use presence::PresenceGuard;
pub(crate) use presence::Streams;
pub use reads::{ReadCursor, ReadsPage};
pub(crate) use typing::TypingTable;
pub use typing::{TYPING_EVERY, TYPING_HOLD};

impl<S: Store> Engine<S> {
    /// The signals addressed to the actor's user from now on, for one of
    /// its event streams (policy rule 6: its own). A stream that falls
    /// [`BACKLOG`](crate::store::BACKLOG) signals behind skips the oldest.
    pub fn signals(&self, actor: &Actor) -> impl Stream<Item = Arc<Signal>> + Send + 'static {
        let mut rx = self.store().signals().subscribe(&actor.user);
        async_stream::stream! {
            loop {
                yield rx.recv().await;
            }
        }
    }

    /// Publishes `signal` to `to`, unless nobody is to get it.
    pub(crate) async fn publish(&self, to: Vec<UserId>, signal: Signal) -> Result<(), Error> {
        if to.is_empty() {
            return Ok(());
        }
        self.store()
            .publish(&Addressed { to, signal })
            .await
            .map_err(Error::store)
    }

    /// The participants of `c` (which must exist) but `except`. `None` for a
    /// group of more than `max` members.
    pub(crate) async fn others(
        &self,
        c: &ConversationId,
        except: &UserId,
        max: usize,
    ) -> Result<Option<Vec<UserId>>, Error> {
        let mut users = match c {
            ConversationId::Direct(a, b) => vec![a.clone(), b.clone()],
            ConversationId::Group(g) => {
                let members = self.store().members(g).await.map_err(Error::store)?;
                if members.len() > max {
                    return Ok(None);
                }
                members.into_iter().map(|m| m.id).collect()
            }
            // A room's signals go to no one by name: see `Engine::typing`.
            ConversationId::Room(_) => return Ok(None),
        };
        users.retain(|u| u != except);
        Ok(Some(users))
    }
}
