//! Messages that change: edits, deletes and reactions.
//!
//! Each change is one atomic store write that also appends a stored event
//! (`edit`, `delete`, `reaction`) to every participant's feed; none of them
//! moves unread counts or the conversation list. A delete erases the body:
//! the store keeps no readable trace of it, and the engine drops the
//! message from its recent-message cache.

use std::collections::BTreeSet;

use crate::data::{Body, ConversationId, Event, MAX_REACTION_KEY, Message, Seq, UserId};
use crate::engine::{Actor, Engine};
use crate::error::Error;
use crate::hooks::Committed;
use crate::policy::{self, Action};
use crate::store::{MessageChange, MessageUpdate, MessageUpdated, Store, change_event};

/// A message's reactions as listed: each key and who reacted with it.
pub type ReactionList = Vec<(String, BTreeSet<UserId>)>;

/// Checks a reaction key: 1 to [`MAX_REACTION_KEY`] characters, none a
/// control character.
pub(crate) fn check_reaction_key(key: &str) -> Result<(), Error> {
    let n = key.chars().count();
    if n == 0 || n > MAX_REACTION_KEY || key.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "a reaction key is 1 to {MAX_REACTION_KEY} characters without control characters"
        )));
    }
    Ok(())
}

impl<S: Store> Engine<S> {
    /// Replaces a message's body: its sender (or an admin), while a
    /// participant. Answers the message as it now is.
    ///
    /// # Errors
    ///
    /// [`Error::TooLarge`] for a body over the limit, [`Error::NotFound`],
    /// [`Error::Forbidden`], [`Error::Deleted`] for a deleted message,
    /// [`Error::Store`].
    pub async fn edit(
        &self,
        actor: &Actor,
        conversation: &ConversationId,
        seq: Seq,
        body: Body,
    ) -> Result<Message, Error> {
        self.check_body(&body)?;
        let message = self.message(actor, conversation, seq).await?;
        policy::check(actor, Action::Edit { message: &message })?;
        self.change(&message, MessageChange::Edit(body)).await
    }

    /// Deletes a message for everyone: its sender or its group's owner
    /// (while a participant), or an admin. Its body is erased. Deleting it
    /// again answers it as it is.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Forbidden`], [`Error::Store`].
    pub async fn delete(
        &self,
        actor: &Actor,
        conversation: &ConversationId,
        seq: Seq,
    ) -> Result<Message, Error> {
        let message = self.message(actor, conversation, seq).await?;
        let owner = match conversation {
            ConversationId::Group(g) | ConversationId::Room(g) => Some(
                self.require_conversation_space(conversation, g)
                    .await?
                    .owner,
            ),
            ConversationId::Direct(..) => None,
        };
        let delete = Action::Delete {
            message: &message,
            group_owner: owner.as_ref(),
        };
        policy::check(actor, delete)?;
        self.change(&message, MessageChange::Delete).await
    }

    /// Adds (`add`) or takes back the caller's reaction `key` to a message,
    /// as a participant. Idempotent. Answers the message as it now is.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for a bad key, [`Error::NotFound`],
    /// [`Error::Forbidden`], [`Error::Deleted`],
    /// [`Error::TooManyReactions`], [`Error::Store`].
    pub async fn react(
        &self,
        actor: &Actor,
        conversation: &ConversationId,
        seq: Seq,
        key: &str,
        add: bool,
    ) -> Result<Message, Error> {
        check_reaction_key(key)?;
        self.require_taking_part(actor, conversation).await?;
        let message = self.message(actor, conversation, seq).await?;
        let change = MessageChange::React {
            user: actor.user.clone(),
            key: key.to_owned(),
            add,
        };
        self.change(&message, change).await
    }

    /// A message's reactions, by key, with who reacted; for participants
    /// and admins.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Forbidden`], [`Error::Store`].
    pub async fn reactions(
        &self,
        actor: &Actor,
        conversation: &ConversationId,
        seq: Seq,
    ) -> Result<ReactionList, Error> {
        let message = self.message(actor, conversation, seq).await?;
        Ok(message.reactions.into_iter().collect())
    }

    /// Applies `change` to `message` in one store write.
    pub(crate) async fn change(
        &self,
        message: &Message,
        change: MessageChange,
    ) -> Result<Message, Error> {
        let conversation = &message.conversation;
        let update = MessageUpdate {
            conversation: conversation.clone(),
            seq: message.seq,
            change,
            at: self.now(),
            recipients: self.recipients(conversation).await?,
            max_reaction_keys: self.limits().reaction_keys,
            trim: self.feed_trim(),
        };
        let updated = self
            .store()
            .update_message(&update)
            .await
            .map_err(Error::store)?;
        // Whatever happened, the cache has no business answering for it.
        self.forget_message(conversation, message.seq);
        if let MessageUpdated::Changed(m) = &updated
            && let ConversationId::Room(_) = conversation
        {
            let event = change_event(conversation, m.seq, &update.change, update.at);
            self.publish_room_event(event, Some(m)).await;
        }
        if let MessageUpdated::Changed(m) = &updated
            && self.reporting()
        {
            let event = change_event(conversation, m.seq, &update.change, update.at);
            let edited = matches!(event, Event::Edit { .. });
            self.report([Committed {
                user: None,
                ts: update.at,
                event,
                message: edited.then(|| m.clone()),
            }]);
        }
        let what = || format!("message {} of {conversation}", message.seq);
        match updated {
            MessageUpdated::Changed(m) | MessageUpdated::Unchanged(m) => Ok(m),
            MessageUpdated::NotFound => Err(Error::NotFound(what())),
            MessageUpdated::Deleted(_) => Err(Error::Deleted(format!("{} is deleted", what()))),
            MessageUpdated::TooManyReactions => Err(Error::TooManyReactions(format!(
                "{} has {} reaction keys already",
                what(),
                self.limits().reaction_keys
            ))),
            MessageUpdated::NotMember => Err(policy::forbidden(Action::Take {
                conversation,
                participant: false,
            })),
        }
    }
}
