//! Presence: a user is online while one of its streams is open on some
//! node; its contacts' streams hear when that starts and when it ends.
//!
//! Each process counts its own open streams per user. The first one here
//! records the user online in the store; when the last one here closes,
//! the process waits [`Config::presence_grace`](crate::Config::presence_grace)
//! and records it offline only if none opened meanwhile, so a page reload
//! or a reconnect announces nothing. The store, which every node shares,
//! says whether that changed the user's presence as a whole: only then do
//! the streams of the users who have it in their contacts get
//! `event: presence`.

use std::sync::Arc;

use crate::data::{Signal, Timestamp, UserId};
use crate::engine::{Actor, Engine};
use crate::error::Error;
use crate::store::{Marks, Store};

/// This process's streams of one user.
#[derive(Debug, Default)]
pub(crate) struct Streams {
    /// Open streams (0 during the grace after the last one closed).
    open: usize,
    /// Moves on at every open and close, so a grace timer knows whether
    /// anything happened since it started.
    generation: u64,
}

impl<S: Store> Engine<S> {
    /// Marks one more live stream of the actor's user as open; the user is
    /// online until the returned guard and all others like it are dropped
    /// (and the grace after that has passed).
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the presence could not be recorded.
    pub async fn connect(&self, actor: &Actor) -> Result<PresenceGuard<S>, Error> {
        // On a task of its own: hyper drops a request's future when its
        // client leaves before the answer, and a `connect` stopped between
        // recording the user online and handing out the guard would leave
        // it online for good. Left alone, the task finishes, and the guard
        // nobody took closes the stream like any other.
        let (engine, user) = (self.clone(), actor.user.clone());
        match tokio::spawn(async move { engine.open_stream(&user).await }).await {
            Ok(opened) => opened,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // The runtime is shutting down: nobody will read the answer.
            Err(e) => Err(Error::store(crate::StoreError::backend(e))),
        }
    }

    /// [`Engine::connect`], which must not be stopped part way.
    async fn open_stream(&self, user: &UserId) -> Result<PresenceGuard<S>, Error> {
        let mut streams = self.inner.streams.lock().await;
        if let Some(s) = streams.get_mut(user) {
            // Open here already, or within its grace: nothing changes.
            s.open += 1;
            s.generation += 1;
        } else {
            let before = self.presence_of(user).await?;
            self.store()
                .set_presence(user, true, self.now())
                .await
                .map_err(Error::store)?;
            streams.insert(
                user.clone(),
                Streams {
                    open: 1,
                    generation: 0,
                },
            );
            if !before.online {
                self.announce(user, true, before.last_seen).await;
            }
        }
        Ok(PresenceGuard {
            engine: self.clone(),
            user: Some(user.clone()),
        })
    }

    async fn disconnect(self, user: UserId) {
        let at = self.now();
        let generation = {
            let mut streams = self.inner.streams.lock().await;
            let Some(s) = streams.get_mut(&user) else {
                return;
            };
            s.open -= 1;
            s.generation += 1;
            if s.open > 0 {
                return;
            }
            s.generation
        };
        // Nothing holds the engine during the grace (`Engine::try_into_store`).
        let grace = self.config().presence_grace;
        let engine = Arc::downgrade(&self.inner);
        drop(self);
        tokio::time::sleep(grace).await;
        let Some(inner) = engine.upgrade() else {
            return;
        };
        Engine { inner }.go_offline(user, generation, at).await;
    }

    /// Records `user` offline at `at` unless a stream opened since the
    /// close of `generation`.
    async fn go_offline(&self, user: UserId, generation: u64, at: Timestamp) {
        let mut streams = self.inner.streams.lock().await;
        if streams
            .get(&user)
            .is_none_or(|s| s.open > 0 || s.generation != generation)
        {
            return;
        }
        streams.remove(&user);
        // Nobody waits for this answer: a failure leaves the user shown
        // online until its next stream closes, which is all we can do.
        if self.store().set_presence(&user, false, at).await.is_err() {
            return;
        }
        if let Ok(after) = self.presence_of(&user).await
            && !after.online
        {
            self.announce(&user, false, after.last_seen).await;
        }
    }

    /// Tells the streams of everyone who has `user` in their contacts, but
    /// those `user` blocks. A failure costs the announcement only.
    async fn announce(&self, user: &UserId, online: bool, last_seen: Option<Timestamp>) {
        let Ok(mut to) = self.store().followers(user).await else {
            return;
        };
        let Ok(blocked) = self.store().marks(&Marks::Blocks(user.clone())).await else {
            return;
        };
        to.retain(|f| !blocked.iter().any(|m| m.user == *f));
        let signal = Signal::Presence {
            user: user.clone(),
            online,
            last_seen,
        };
        let _ = self.publish(to, signal).await;
    }
}

/// Keeps a user online while it lives; see [`Engine::connect`].
///
/// Dropping it records the close on a spawned task, so it must be dropped
/// inside a Tokio runtime (a stream body always is).
#[derive(Debug)]
pub struct PresenceGuard<S: Store> {
    engine: Engine<S>,
    user: Option<UserId>,
}

impl<S: Store> Drop for PresenceGuard<S> {
    fn drop(&mut self) {
        let Some(user) = self.user.take() else { return };
        let engine = self.engine.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { engine.disconnect(user).await });
        }
    }
}
