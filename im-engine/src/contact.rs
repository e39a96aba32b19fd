//! Contacts: a user's own one-way list of other users.

use serde::Serialize;

use crate::data::{Contact, ContactNews, Event, Timestamp, UserId};
use crate::engine::{Actor, Engine, page_limit};
use crate::error::Error;
use crate::page::{self, LIST_PAGE_DEFAULT, LIST_PAGE_MAX, ListQuery, Page};
use crate::store::{Changes, ContactChange, Marks, Store};

/// A contact as answered, with its presence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContactView {
    /// The contact's user id.
    pub id: UserId,
    /// When it was added.
    pub since: Timestamp,
    /// Whether the contact is online.
    pub online: bool,
}

impl<S: Store> Engine<S> {
    /// Adds `id` to the caller's contacts; adding it again keeps the first
    /// `since`. A new link tells `id` with a stored `contact` event in the
    /// same commit, unless `id` blocks the caller.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when either user does not exist,
    /// [`Error::Invalid`] for the caller itself, [`Error::Store`].
    pub async fn link(&self, actor: &Actor, id: &UserId) -> Result<(), Error> {
        if actor.user == *id {
            return Err(Error::Invalid("a user cannot be its own contact".into()));
        }
        self.require_user(&actor.user).await?;
        self.require_user(id).await?;
        let contacts = self
            .store()
            .contacts(&actor.user)
            .await
            .map_err(Error::store)?;
        if contacts.iter().any(|c| c.id == *id) {
            return Ok(());
        }
        let now = self.now();
        let contact = Contact {
            id: id.clone(),
            since: now,
            order: contacts.iter().map(|c| c.order).max().unwrap_or(0) + 1,
        };
        let mut changes = Changes {
            contacts: vec![(actor.user.clone(), ContactChange::Put(contact))],
            trim: self.feed_trim(),
            ..Changes::default()
        };
        if !self
            .is_marked(&Marks::Blocks(id.clone()), &actor.user)
            .await?
        {
            let event = Event::Contact {
                user: actor.user.clone(),
                change: ContactNews::Added,
            };
            changes.events.push((id.clone(), now, event));
        }
        self.commit(&changes).await
    }

    /// Removes `id` from the caller's contacts, if there.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when either user does not exist, [`Error::Store`].
    pub async fn unlink(&self, actor: &Actor, id: &UserId) -> Result<(), Error> {
        self.require_user(&actor.user).await?;
        self.require_user(id).await?;
        let current = self
            .store()
            .contact(&actor.user, id)
            .await
            .map_err(Error::store)?;
        if current.is_none() {
            return Ok(());
        }
        self.change_contact(actor, ContactChange::Remove(id.clone()))
            .await
    }

    async fn change_contact(&self, actor: &Actor, change: ContactChange) -> Result<(), Error> {
        let changes = Changes {
            contacts: vec![(actor.user.clone(), change)],
            ..Changes::default()
        };
        self.commit(&changes).await
    }

    /// A page of the caller's contacts, newest link first
    /// ([`Contact::newest_first`]). The store has no index in that order,
    /// so every contact is read and sorted; only the page's presence is.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when the caller does not exist, [`Error::Invalid`]
    /// for a bad cursor or limit, [`Error::Store`].
    pub async fn contacts(
        &self,
        actor: &Actor,
        query: &ListQuery,
    ) -> Result<Page<ContactView>, Error> {
        let limit = page_limit(query.limit, LIST_PAGE_DEFAULT, LIST_PAGE_MAX)?;
        let after = page::contact_cursor(query.after.as_deref())?;
        self.require_user(&actor.user).await?;
        let mut contacts = self
            .store()
            .contacts(&actor.user)
            .await
            .map_err(Error::store)?;
        if let Some(after) = &after {
            contacts.retain(|c| Contact::newest_first(after, c).is_lt());
        }
        contacts.sort_by(Contact::newest_first);
        contacts.truncate(limit + 1);
        let page = Page::cut(contacts, limit, page::contact_key);
        let mut items = Vec::with_capacity(page.items.len());
        for c in &page.items {
            let online = self.presence_of(&c.id).await?.online;
            items.push(ContactView {
                id: c.id.clone(),
                since: c.since,
                online,
            });
        }
        Ok(Page {
            items,
            has_more: page.has_more,
            next: page.next,
        })
    }
}
