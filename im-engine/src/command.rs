//! Every engine operation as one value: what the property tests generate,
//! what the fuzz targets decode, and a plain list of what the engine does.

use crate::Error;
use crate::change::ReactionList;
use crate::contact::ContactView;
use crate::data::{
    Body, ConversationId, FieldPatch, GroupId, JoinPolicy, Member, Message, Seq, UserId,
};
use crate::engine::{Actor, Engine};
use crate::feed::{EventPage, Start};
use crate::group::GroupView;
use crate::message::{HistoryPage, SendRequest};
use crate::moderation::{JoinRequest, Joined, Marked};
use crate::page::{ListQuery, Page};
use crate::password::Password;
use crate::signals::ReadsPage;
use crate::store::Store;
use crate::unread::{ConversationView, ReadState};
use crate::user::Profile;

/// One engine operation, as its caller would ask for it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[allow(missing_docs)]
pub enum Command {
    PutUser {
        id: UserId,
        fields: FieldPatch,
    },
    User {
        id: UserId,
    },
    SetPassword {
        id: UserId,
        password: Password,
        old_password: Option<Password>,
    },
    Link {
        id: UserId,
    },
    Unlink {
        id: UserId,
    },
    Contacts {
        query: ListQuery,
    },
    PutGroup {
        id: GroupId,
        fields: FieldPatch,
        join: Option<JoinPolicy>,
        /// Hand the group to this member.
        owner: Option<UserId>,
    },
    Group {
        id: GroupId,
    },
    Members {
        id: GroupId,
        query: ListQuery,
    },
    Join {
        group: GroupId,
        user: UserId,
    },
    Leave {
        group: GroupId,
        user: UserId,
    },
    Requests {
        group: GroupId,
    },
    Withdraw {
        group: GroupId,
        user: UserId,
    },
    Ban {
        group: GroupId,
        user: UserId,
    },
    Unban {
        group: GroupId,
        user: UserId,
    },
    Bans {
        group: GroupId,
    },
    PutRoom {
        id: GroupId,
        fields: FieldPatch,
        join: Option<JoinPolicy>,
        /// Hand the room to this member.
        owner: Option<UserId>,
    },
    Room {
        id: GroupId,
    },
    RoomMembers {
        id: GroupId,
        query: ListQuery,
    },
    JoinRoom {
        room: GroupId,
        user: UserId,
    },
    LeaveRoom {
        room: GroupId,
        user: UserId,
    },
    Block {
        id: UserId,
    },
    Unblock {
        id: UserId,
    },
    Blocks,
    Suspend {
        id: UserId,
        suspended: bool,
    },
    Erase {
        id: UserId,
    },
    Send {
        conversation: ConversationId,
        request: SendRequest,
    },
    History {
        conversation: ConversationId,
        query: crate::HistoryQuery,
    },
    Message {
        conversation: ConversationId,
        seq: Seq,
    },
    MarkRead {
        conversation: ConversationId,
        seq: Option<Seq>,
    },
    Edit {
        conversation: ConversationId,
        seq: Seq,
        body: Body,
    },
    Delete {
        conversation: ConversationId,
        seq: Seq,
    },
    /// Add (`add`) or take back the caller's reaction.
    React {
        conversation: ConversationId,
        seq: Seq,
        key: String,
        add: bool,
    },
    Reactions {
        conversation: ConversationId,
        seq: Seq,
    },
    Conversations {
        query: ListQuery,
    },
    /// Start or stop typing (a signal: nothing is stored).
    Typing {
        conversation: ConversationId,
        typing: bool,
    },
    /// Every participant's read cursor.
    Reads {
        conversation: ConversationId,
        after: Option<UserId>,
        limit: Option<usize>,
    },
    /// Read the caller's feed without waiting.
    Feed {
        start: Start,
        limit: usize,
    },
}

/// What a [`Command`] answered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Outcome {
    /// A profile, and whether it was created.
    Profile(Profile, bool),
    Done,
    /// Done, with nothing to answer.
    NoContent,
    Contacts(Page<ContactView>),
    /// A group (or room), and whether it was created.
    Group(GroupView, bool),
    Members(Page<Member>),
    /// A join request was recorded (or was there).
    Requested,
    Requests(Vec<JoinRequest>),
    Blocks(Vec<Marked>),
    Bans(Vec<Marked>),
    /// A message, and whether it is new.
    Sent(Message, bool),
    History(HistoryPage),
    Message(Message),
    Read(ReadState),
    Reactions(ReactionList),
    Conversations(Page<ConversationView>),
    Feed(EventPage),
    Reads(ReadsPage),
    /// A signal went out (or was coalesced); there is nothing to answer.
    Signalled,
}

impl<S: Store> Engine<S> {
    /// Runs one command as `actor`.
    ///
    /// Some commands take several store steps (an erase, a ban, a room
    /// join or leave): a caller that drops the future part way can leave
    /// one half done. Run it to its end; `im-http` does, even when the
    /// client leaves before the answer.
    ///
    /// # Errors
    ///
    /// Those of the operation it names.
    pub async fn execute(&self, actor: &Actor, command: Command) -> Result<Outcome, Error> {
        self.refuse_suspended(actor)?;
        Ok(match command {
            Command::PutUser { id, fields } => {
                let (p, created) = self.put_user(actor, &id, fields).await?;
                Outcome::Profile(p, created)
            }
            Command::User { id } => Outcome::Profile(self.user(actor, &id).await?, false),
            Command::SetPassword {
                id,
                password,
                old_password,
            } => self
                .set_password(actor, &id, &password, old_password.as_ref())
                .await
                .map(|()| Outcome::NoContent)?,
            Command::Link { id } => self.link(actor, &id).await.map(|()| Outcome::Done)?,
            Command::Unlink { id } => self.unlink(actor, &id).await.map(|()| Outcome::Done)?,
            Command::Contacts { query } => Outcome::Contacts(self.contacts(actor, &query).await?),
            Command::PutGroup {
                id,
                fields,
                join,
                owner,
            } => {
                let owner = owner.as_ref();
                let (g, created) = self.update_group(actor, &id, fields, join, owner).await?;
                Outcome::Group(g, created)
            }
            Command::Group { id } => Outcome::Group(self.group(actor, &id).await?, false),
            Command::Members { id, query } => {
                Outcome::Members(self.members(actor, &id, &query).await?)
            }
            Command::Join { group, user } => match self.join(actor, &group, &user).await? {
                Joined::Member => Outcome::Done,
                Joined::Requested => Outcome::Requested,
            },
            Command::Leave { group, user } => self
                .leave(actor, &group, &user)
                .await
                .map(|()| Outcome::Done)?,
            Command::Requests { group } => Outcome::Requests(self.requests(actor, &group).await?),
            Command::Withdraw { group, user } => {
                self.withdraw(actor, &group, &user).await?;
                Outcome::Done
            }
            Command::Ban { group, user } => {
                self.ban(actor, &group, &user).await?;
                Outcome::Done
            }
            Command::Unban { group, user } => {
                self.unban(actor, &group, &user).await?;
                Outcome::Done
            }
            Command::Bans { group } => Outcome::Bans(self.bans(actor, &group).await?),
            Command::PutRoom {
                id,
                fields,
                join,
                owner,
            } => {
                let owner = owner.as_ref();
                let (g, created) = self.update_room(actor, &id, fields, join, owner).await?;
                Outcome::Group(g, created)
            }
            Command::Room { id } => Outcome::Group(self.room(actor, &id).await?, false),
            Command::RoomMembers { id, query } => {
                Outcome::Members(self.room_members(actor, &id, &query).await?)
            }
            Command::JoinRoom { room, user } => {
                self.join_room(actor, &room, &user).await?;
                Outcome::Done
            }
            Command::LeaveRoom { room, user } => {
                self.leave_room(actor, &room, &user).await?;
                Outcome::Done
            }
            Command::Block { id } => self.block(actor, &id).await.map(|()| Outcome::Done)?,
            Command::Unblock { id } => self.unblock(actor, &id).await.map(|()| Outcome::Done)?,
            Command::Blocks => Outcome::Blocks(self.blocks(actor).await?),
            Command::Suspend { id, suspended } => {
                self.suspend(actor, &id, suspended).await?;
                Outcome::Profile(self.user(actor, &id).await?, false)
            }
            Command::Erase { id } => self.erase(actor, &id).await.map(|()| Outcome::Done)?,
            Command::Send {
                conversation,
                request,
            } => {
                let (m, new) = self.send(actor, &conversation, request).await?;
                Outcome::Sent(m, new)
            }
            Command::History {
                conversation,
                query,
            } => Outcome::History(self.history(actor, &conversation, query).await?),
            Command::Message { conversation, seq } => {
                Outcome::Message(self.message(actor, &conversation, seq).await?)
            }
            Command::MarkRead { conversation, seq } => {
                Outcome::Read(self.mark_read(actor, &conversation, seq).await?)
            }
            Command::Edit {
                conversation,
                seq,
                body,
            } => Outcome::Message(self.edit(actor, &conversation, seq, body).await?),
            Command::Delete { conversation, seq } => {
                Outcome::Message(self.delete(actor, &conversation, seq).await?)
            }
            Command::React {
                conversation,
                seq,
                key,
                add,
            } => Outcome::Message(self.react(actor, &conversation, seq, &key, add).await?),
            Command::Reactions { conversation, seq } => {
                Outcome::Reactions(self.reactions(actor, &conversation, seq).await?)
            }
            Command::Conversations { query } => {
                Outcome::Conversations(self.conversation_page(actor, &query).await?)
            }
            Command::Feed { start, limit } => Outcome::Feed(self.feed(actor, start, limit).await?),
            Command::Typing {
                conversation,
                typing,
            } => self
                .typing(actor, &conversation, typing)
                .await
                .map(|()| Outcome::Signalled)?,
            Command::Reads {
                conversation,
                after,
                limit,
            } => Outcome::Reads(
                self.reads(actor, &conversation, after.as_ref(), limit)
                    .await?,
            ),
        })
    }
}
