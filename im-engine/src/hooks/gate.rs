//! The engine's side of the hooks: the before-send check, and the store
//! writes that report what they committed.
//!
//! Every write of the engine goes through [`Engine::commit`],
//! [`Engine::update_member`], `Engine::change` (message changes) or
//! `Engine::send`, and each reports its events here, right after the store
//! answered.

use super::{Committed, HOOK_UNAVAILABLE, MAX_REFUSAL_MESSAGE, OnTimeout, REFUSED, Verdict};
use crate::data::{Event, Membership, NewMessage};
use crate::engine::Engine;
use crate::error::Error;
use crate::store::{Changes, MemberChange, MemberUpdate, Store, Updated};

/// The error of a refusal, its code checked.
fn refused(code: String, message: String) -> Error {
    let code = if super::is_valid_code(&code) {
        code
    } else {
        REFUSED.to_owned()
    };
    let message = match message.char_indices().nth(MAX_REFUSAL_MESSAGE) {
        Some((cut, _)) => message[..cut].to_owned(),
        None => message,
    };
    Error::Refused { code, message }
}

impl<S: Store> Engine<S> {
    /// Asks the before-send hook about `message` and answers what to store:
    /// the message as it is, or with the hook's body.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] when the hook refuses it (or does not answer in
    /// time, under [`OnTimeout::Refuse`]), [`Error::TooLarge`] for a
    /// replaced body over the limit.
    pub(crate) async fn before_send(&self, mut message: NewMessage) -> Result<NewMessage, Error> {
        let Some(after) = &self.inner.hooks else {
            return Ok(message);
        };
        let config = &self.config().hooks;
        let ask = after.hooks().before_send(&message);
        let verdict = tokio::time::timeout(config.send_timeout, ask)
            .await
            .unwrap_or(Verdict::NoAnswer);
        match verdict {
            Verdict::Allow => Ok(message),
            Verdict::Replace(body) => {
                self.check_body(&body)?;
                message.body = body;
                Ok(message)
            }
            Verdict::Refuse { code, message } => Err(refused(code, message)),
            Verdict::NoAnswer => match config.on_timeout {
                OnTimeout::Allow => Ok(message),
                OnTimeout::Refuse => Err(Error::Refused {
                    code: HOOK_UNAVAILABLE.to_owned(),
                    message: "the send hook did not answer in time".to_owned(),
                }),
            },
        }
    }

    /// Whether an after-commit hook listens (so reports are worth making).
    pub(crate) fn reporting(&self) -> bool {
        self.inner.hooks.is_some()
    }

    /// Hands committed events to the after-commit hook, if any.
    pub(crate) fn report(&self, events: impl IntoIterator<Item = Committed>) {
        if let Some(after) = &self.inner.hooks {
            after.report(events);
        }
    }

    /// Waits until the after-commit hook has been called for every event
    /// committed so far through this engine (at once without hooks). A
    /// server awaits it when it shuts down: events still queued when the
    /// process exits are never delivered.
    pub async fn drain_hooks(&self) {
        if let Some(after) = &self.inner.hooks {
            after.drain().await;
        }
    }

    /// Applies `changes` in one store write and reports their events.
    ///
    /// # Errors
    ///
    /// [`Error::Store`].
    pub(crate) async fn commit(&self, changes: &Changes) -> Result<(), Error> {
        self.store().commit(changes).await.map_err(Error::store)?;
        if self.reporting() {
            let events = changes.events.iter().map(|(u, ts, e)| (u, *ts, e));
            self.report(Committed::once(events));
        }
        Ok(())
    }

    /// Applies a join or a leave and reports its `member` event.
    ///
    /// # Errors
    ///
    /// [`Error::Store`].
    pub(crate) async fn update_member(&self, update: &MemberUpdate) -> Result<Updated, Error> {
        let updated = self
            .store()
            .update_member(update)
            .await
            .map_err(Error::store)?;
        // A room's joins and leaves are no events (see `room.rs`).
        if updated == Updated::Changed && self.reporting() && update.kind.is_group() {
            let (user, change) = match &update.change {
                MemberChange::Put(m) => (&m.id, Membership::Joined),
                MemberChange::Remove(u) => (u, Membership::Left),
            };
            self.report([Committed {
                user: None,
                ts: update.at,
                event: Event::member(&update.group, user, change),
                message: None,
            }]);
        }
        Ok(updated)
    }
}
