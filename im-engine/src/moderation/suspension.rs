//! Suspension: a suspended user may do nothing, and its live streams end.
//!
//! Every engine keeps the set of suspended users in memory, so that checking
//! a request reads nothing from the store. The engine that suspends a user
//! learns of it at once; the others sharing the store (the nodes on one
//! Redis) read the store's [`Marks::Suspended`] set every interval given to
//! [`Engine::watch_suspensions`], which the server runs: a suspension
//! reaches every node within that interval plus one store read.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::data::UserId;
use crate::engine::{Actor, Engine};
use crate::error::Error;
use crate::policy::{self, Action};
use crate::store::{Mark, MarkChange, Marks, Store};

/// The suspended users as this engine last read them.
#[derive(Debug)]
pub(crate) struct Suspensions(watch::Sender<Arc<HashSet<UserId>>>);

impl Suspensions {
    pub(crate) fn new() -> Self {
        Self(watch::Sender::new(Arc::default()))
    }

    fn contains(&self, user: &UserId) -> bool {
        self.0.borrow().contains(user)
    }

    /// Replaces the set, telling the streams only when it changed.
    fn replace(&self, users: HashSet<UserId>) {
        self.0.send_if_modified(|old| {
            let changed = **old != users;
            if changed {
                *old = Arc::new(users);
            }
            changed
        });
    }

    pub(crate) fn update(&self, user: &UserId, suspended: bool) {
        let mut users = (**self.0.borrow()).clone();
        if suspended {
            users.insert(user.clone());
        } else {
            users.remove(user);
        }
        self.replace(users);
    }
}

/// A live stream's view of one user's suspension.
#[derive(Debug)]
pub(crate) struct SuspensionWatch {
    user: UserId,
    rx: watch::Receiver<Arc<HashSet<UserId>>>,
}

impl SuspensionWatch {
    /// Resolves once the user is suspended (never, if the engine is gone).
    pub(crate) async fn suspended(&mut self) {
        let user = &self.user;
        if self.rx.wait_for(|s| s.contains(user)).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl<S: Store> Engine<S> {
    /// Suspends a user, or lifts its suspension (admins only, policy rule
    /// 2). While suspended, everything it asks is refused with
    /// [`Error::Suspended`] and its live streams end.
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`], [`Error::NotFound`], [`Error::Store`].
    pub async fn suspend(&self, actor: &Actor, id: &UserId, suspended: bool) -> Result<(), Error> {
        policy::check(actor, Action::Administer { user: id })?;
        self.require_user(id).await?;
        let change = if suspended {
            MarkChange::Put(Mark {
                user: id.clone(),
                since: self.now(),
            })
        } else {
            MarkChange::Remove(id.clone())
        };
        self.change_marks(vec![(Marks::Suspended, change)]).await?;
        self.inner.suspensions.update(id, suspended);
        Ok(())
    }

    /// Whether `user` is suspended, as this engine last read it.
    pub fn is_suspended(&self, user: &UserId) -> bool {
        self.inner.suspensions.contains(user)
    }

    /// Fails with [`Error::Suspended`] when the actor's user is suspended.
    ///
    /// # Errors
    ///
    /// [`Error::Suspended`].
    pub fn refuse_suspended(&self, actor: &Actor) -> Result<(), Error> {
        if self.is_suspended(&actor.user) {
            return Err(Error::Suspended(format!("{} is suspended", actor.user)));
        }
        Ok(())
    }

    pub(crate) fn suspension_watch(&self, user: &UserId) -> SuspensionWatch {
        SuspensionWatch {
            user: user.clone(),
            rx: self.inner.suspensions.0.subscribe(),
        }
    }

    /// Reads the suspended users from the store.
    ///
    /// # Errors
    ///
    /// [`Error::Store`].
    pub async fn refresh_suspensions(&self) -> Result<(), Error> {
        let marks = self
            .store()
            .marks(&Marks::Suspended)
            .await
            .map_err(Error::store)?;
        self.inner
            .suspensions
            .replace(marks.into_iter().map(|m| m.user).collect());
        Ok(())
    }

    /// Reads the suspended users from the store every `every`, for ever,
    /// so that a suspension made through another engine sharing the store
    /// reaches this one: run it beside a server. A failed read is retried
    /// at the next interval.
    pub async fn watch_suspensions(&self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let _ = self.refresh_suspensions().await;
        }
    }
}
