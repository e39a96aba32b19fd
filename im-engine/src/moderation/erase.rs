//! Erasure: a user who asks to be forgotten.

use crate::data::{ConversationId, UserId};
use crate::engine::{Actor, Engine};
use crate::error::Error;
use crate::policy::{self, Action};
use crate::store::{
    Changes, ContactChange, EntryChange, Mark, MarkChange, Marks, MemberChange, MessageChange,
    Store,
};

/// How many messages erasure reads at once.
const PAGE: u64 = 500;

impl<S: Store> Engine<S> {
    /// Erases a user (admins only, policy rule 2): the bodies of its
    /// messages in the conversations of its list are erased (they become
    /// deleted messages), it leaves every group, and its profile (password
    /// included), contacts (and its place in others'), blocks, conversation
    /// list and feed go. Its id
    /// may then be created again, as a new user.
    ///
    /// The user is suspended first: it can do nothing while it is erased.
    /// Each step is a write of its own, so a failure part way leaves the
    /// user partly erased, and suspended; erasing it again finishes the
    /// work.
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`], [`Error::NotFound`], [`Error::Owner`] while it
    /// owns a group (hand the group over first), [`Error::Store`].
    pub async fn erase(&self, actor: &Actor, id: &UserId) -> Result<(), Error> {
        policy::check(actor, Action::Administer { user: id })?;
        self.user_record(id).await?;
        let mut entries = self.store().entries(id).await.map_err(Error::store)?;
        entries.sort_by(|a, b| a.conversation.cmp(&b.conversation));
        let mut groups = Vec::new();
        for e in &entries {
            if let Some(g) = e.conversation.space() {
                let group = self.require_conversation_space(&e.conversation, g).await?;
                if group.owner == *id {
                    return Err(Error::Owner(format!(
                        "{id} owns {g}: hand it to another member first"
                    )));
                }
                groups.push(group);
            }
        }
        self.suspend_for_erasure(id).await?;
        for e in &entries {
            self.erase_messages(&e.conversation, id).await?;
        }
        for g in groups {
            let update = self.member_update(&g, MemberChange::Remove(id.clone()));
            self.update_member(&update).await?;
        }
        let contacts = self.store().contacts(id).await.map_err(Error::store)?;
        let followers = self.store().followers(id).await.map_err(Error::store)?;
        let blocks = Marks::Blocks(id.clone());
        let blocked = self.store().marks(&blocks).await.map_err(Error::store)?;
        let entries = self.store().entries(id).await.map_err(Error::store)?;
        let mut changes = Changes {
            contacts: contacts
                .into_iter()
                .map(|c| (id.clone(), ContactChange::Remove(c.id)))
                .chain(
                    followers
                        .into_iter()
                        .map(|f| (f, ContactChange::Remove(id.clone()))),
                )
                .collect(),
            entries: entries
                .into_iter()
                .map(|e| (id.clone(), EntryChange::Remove(e.conversation)))
                .collect(),
            marks: blocked
                .into_iter()
                .map(|m| (blocks.clone(), MarkChange::Remove(m.user)))
                .collect(),
            erase: vec![id.clone()],
            ..Changes::default()
        };
        changes
            .marks
            .push((Marks::Suspended, MarkChange::Remove(id.clone())));
        self.commit(&changes).await?;
        self.forget_user(id);
        self.inner.suspensions.update(id, false);
        Ok(())
    }

    /// Suspends `user` while it is erased, so that it sends nothing the
    /// passes over its conversations would miss, and stays locked out if
    /// the erasure stops part way; the erasure's last step lifts it with
    /// the rest. Another node refuses the user from when it next reads
    /// the suspensions.
    async fn suspend_for_erasure(&self, user: &UserId) -> Result<(), Error> {
        let suspended = self
            .store()
            .mark(&Marks::Suspended, user)
            .await
            .map_err(Error::store)?;
        if suspended.is_none() {
            let mark = Mark {
                user: user.clone(),
                since: self.now(),
            };
            self.change_marks(vec![(Marks::Suspended, MarkChange::Put(mark))])
                .await?;
        }
        self.inner.suspensions.update(user, true);
        Ok(())
    }

    /// Erases the bodies of `user`'s messages in `conversation`.
    async fn erase_messages(
        &self,
        conversation: &ConversationId,
        user: &UserId,
    ) -> Result<(), Error> {
        let last = self
            .store()
            .last_seq(conversation)
            .await
            .map_err(Error::store)?;
        let mut from = 1;
        while from <= last {
            let to = (from + PAGE - 1).min(last);
            let page = self
                .store()
                .messages(conversation, from, to)
                .await
                .map_err(Error::store)?;
            for m in page.iter().filter(|m| m.from == *user && !m.is_deleted()) {
                self.change(m, MessageChange::Delete).await?;
            }
            from = to + 1;
        }
        Ok(())
    }
}
