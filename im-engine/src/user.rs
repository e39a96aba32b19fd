//! Users: profiles, field patches, and presence.

use serde::Serialize;

use crate::data::{FieldPatch, Fields, Presence, Timestamp, User, UserId};
use crate::engine::{Actor, Engine, Limits};
use crate::error::Error;
use crate::password::Password;
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
        let _writing = self.lock_user(id).await;
        let existing = self.store().user(id).await.map_err(Error::store)?;
        let exists = existing.is_some();
        policy::check(actor, Action::PutUser { user: id, exists })?;
        let created = existing.is_none();
        let mut user = existing.unwrap_or_else(|| User {
            id: id.clone(),
            fields: Fields::new(),
            created_at: self.now(),
            password: None,
        });
        apply_patch(&mut user.fields, patch, self.limits())?;
        self.commit(&Changes {
            users: vec![user.clone()],
            ..Changes::default()
        })
        .await?;
        Ok((self.profile_of(actor, user).await?, created))
    }

    /// Sets `id`'s password: the user itself, with `old` once it has one,
    /// or an admin, without (policy rule 8). Only its Argon2id hash is kept;
    /// a profile patch keeps it.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for a password not 8 to 1024 bytes long,
    /// [`Error::NotFound`], [`Error::Forbidden`] for anyone else or a
    /// missing or wrong `old`, [`Error::Store`].
    pub async fn set_password(
        &self,
        actor: &Actor,
        id: &UserId,
        password: &Password,
        old: Option<&Password>,
    ) -> Result<(), Error> {
        if !password.is_acceptable() {
            return Err(Error::Invalid(format!(
                "a password is {} to {} bytes",
                crate::MIN_PASSWORD,
                crate::MAX_PASSWORD
            )));
        }
        let _writing = self.lock_user(id).await;
        let mut user = self.user_record(id).await?;
        let old_matches = match old {
            _ if !policy::needs_old_password(actor, id, user.password.is_some()) => true,
            Some(old) if old.is_acceptable() => {
                self.inner
                    .hasher
                    .verify(old, user.password.as_ref())
                    .await?
            }
            _ => false,
        };
        policy::check(
            actor,
            Action::SetPassword {
                user: id,
                old_matches,
            },
        )?;
        user.password = Some(self.inner.hasher.hash(password).await?);
        self.commit(&Changes {
            users: vec![user],
            ..Changes::default()
        })
        .await
    }

    /// Who `password` logs in as: `Some(user)` when it is `user`'s; `None`
    /// for a wrong password, a user without one, or no such user, all
    /// answered in about the same time (a password is checked against a
    /// dummy hash where there is none). Logging in makes no one an admin
    /// (policy rule 8). A password not 8 to 1024 bytes long matches no one
    /// and is answered at once.
    ///
    /// # Errors
    ///
    /// [`Error::Suspended`] for the right password of a suspended user,
    /// [`Error::Store`].
    pub async fn login(&self, user: &UserId, password: &Password) -> Result<Option<Actor>, Error> {
        if !password.is_acceptable() {
            return Ok(None);
        }
        let record = self.store().user(user).await.map_err(Error::store)?;
        let hash = record.as_ref().and_then(|u| u.password.as_ref());
        let matches = self.inner.hasher.verify(password, hash).await?;
        let actor = matches.then(|| Actor::user(user.clone()));
        if let Some(actor) = &actor {
            // Told only to whoever knows the password.
            self.refuse_suspended(actor)?;
        }
        Ok(actor)
    }

    /// A user's profile; anyone may read it.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Store`].
    pub async fn user(&self, actor: &Actor, id: &UserId) -> Result<Profile, Error> {
        // Anyone reads a profile (policy rule 2), its private fields only
        // the user itself and admins (rule 9); admins see more.
        let user = self.user_record(id).await?;
        let mut profile = self.profile_of(actor, user).await?;
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

    /// `user`'s profile as `actor` sees it.
    async fn profile_of(&self, actor: &Actor, user: User) -> Result<Profile, Error> {
        let p = self.presence_of(&user.id).await?;
        let mut fields = user.fields;
        if !policy::sees_private_fields(actor, &user.id) {
            fields.retain(|name, _| !policy::is_private_field(name));
        }
        Ok(Profile {
            id: user.id,
            fields,
            created_at: user.created_at,
            online: p.online,
            last_seen: p.last_seen,
            suspended: None,
        })
    }
}
