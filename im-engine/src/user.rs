//! Users: profiles, field patches, and presence.

use serde::Serialize;

use crate::data::{FieldPatch, Fields, Presence, Timestamp, User, UserId};
use crate::engine::{Actor, Engine, Limits};
use crate::error::Error;
use crate::policy::{self, Action};
use crate::store::{Changes, Marks, Store};

/// A user as answered: the stored user and its presence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    /// The id.
    pub id: UserId,
    /// Profile fields.
    pub fields: Fields,
    /// When it was created.
    pub created_at: Timestamp,
    /// See [`Presence::online`].
    pub online: bool,
    /// See [`Presence::last_seen`].
    pub last_seen: Option<Timestamp>,
    /// Whether the user is suspended: shown to admins only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspended: Option<bool>,
}

/// Checks a patch against the limits without looking at stored data.
pub(crate) fn check_patch(patch: &FieldPatch, limits: &Limits) -> Result<(), Error> {
    if patch.len() > limits.fields {
        return Err(Error::Invalid(format!("at most {} fields", limits.fields)));
    }
    for (name, value) in patch {
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(Error::Invalid(
                "a field name is 1 to 64 bytes without control characters".into(),
            ));
        }
        if value.as_ref().is_some_and(|v| v.len() > limits.field_bytes) {
            return Err(Error::Invalid(format!(
                "field {name:?} is over {} bytes",
                limits.field_bytes
            )));
        }
    }
    Ok(())
}

/// Applies a checked patch, failing if the result has too many fields.
pub(crate) fn apply_patch(
    fields: &mut Fields,
    patch: FieldPatch,
    limits: &Limits,
) -> Result<(), Error> {
    for (name, value) in patch {
        match value {
            Some(v) => fields.insert(name, v),
            None => fields.remove(&name),
        };
    }
    if fields.len() > limits.fields {
        return Err(Error::Invalid(format!("at most {} fields", limits.fields)));
    }
    Ok(())
}

impl<S: Store> Engine<S> {
    /// Creates a user (admin only) or merges `patch` into its fields (the
    /// user itself, or an admin). Answers the profile and whether it was
    /// created.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for a bad patch, [`Error::Forbidden`] for anyone
    /// else, [`Error::Store`].
    pub async fn put_user(
        &self,
        actor: &Actor,
        id: &UserId,
        patch: FieldPatch,
    ) -> Result<(Profile, bool), Error> {
        check_patch(&patch, self.limits())?;
        let existing = self.store().user(id).await.map_err(Error::store)?;
        let exists = existing.is_some();
        policy::check(actor, Action::PutUser { user: id, exists })?;
        let created = existing.is_none();
        let mut user = existing.unwrap_or_else(|| User {
            id: id.clone(),
            fields: Fields::new(),
            created_at: self.now(),
        });
        apply_patch(&mut user.fields, patch, self.limits())?;
        self.commit(&Changes {
            users: vec![user.clone()],
            ..Changes::default()
        })
        .await?;
        Ok((self.profile_of(user).await?, created))
    }

    /// A user's profile; anyone may read it.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Store`].
    pub async fn user(&self, actor: &Actor, id: &UserId) -> Result<Profile, Error> {
        // Anyone reads a profile (policy rule 2); admins see more.
        let user = self.user_record(id).await?;
        let mut profile = self.profile_of(user).await?;
        if actor.admin {
            let mark = self.store().mark(&Marks::Suspended, id).await;
            profile.suspended = Some(mark.map_err(Error::store)?.is_some());
        }
        Ok(profile)
    }

    /// A user's presence; anyone may read it.
    ///
    /// # Errors
    ///
    /// [`Error::Store`].
    pub async fn presence(&self, actor: &Actor, id: &UserId) -> Result<Presence, Error> {
        let _ = actor; // As its profile.
        self.presence_of(id).await
    }

    pub(crate) async fn presence_of(&self, id: &UserId) -> Result<Presence, Error> {
        self.store().presence(id).await.map_err(Error::store)
    }

    async fn profile_of(&self, user: User) -> Result<Profile, Error> {
        let p = self.presence_of(&user.id).await?;
        Ok(Profile {
            id: user.id,
            fields: user.fields,
            created_at: user.created_at,
            online: p.online,
            last_seen: p.last_seen,
            suspended: None,
        })
    }

    /// Marks one more live stream of the actor's user as open; the user is
    /// online until the returned guard and all others like it are dropped.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the presence could not be recorded.
    pub async fn connect(&self, actor: &Actor) -> Result<PresenceGuard<S>, Error> {
        let user = &actor.user;
        let mut streams = self.inner.streams.lock().await;
        let n = streams.entry(user.clone()).or_insert(0);
        *n += 1;
        if *n == 1
            && let Err(e) = self.store().set_presence(user, true, self.now()).await
        {
            streams.remove(user);
            return Err(Error::store(e));
        }
        Ok(PresenceGuard {
            engine: self.clone(),
            user: Some(user.clone()),
        })
    }

    async fn disconnect(&self, user: UserId) {
        let mut streams = self.inner.streams.lock().await;
        let Some(n) = streams.get_mut(&user) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            streams.remove(&user);
            // Nobody waits for this answer: a failure leaves the user shown
            // online until its next stream closes, which is all we can do.
            let _ = self.store().set_presence(&user, false, self.now()).await;
        }
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
