//! Rooms live: after a room's write commits, one [`RoomEvent`], its data
//! encoded once, goes to [`Store::publish_room`]; a stream watches up to
//! [`MAX_WATCHED_ROOMS`] rooms it may read through [`Engine::watch_rooms`].

use std::collections::BTreeSet;

use crate::data::{ConversationId, Event, GroupId, Message, UserId};
use crate::engine::{Actor, Engine};
use crate::error::Error;
use crate::feed::EventData;
use crate::store::{RoomEvent, RoomReceiver, Store};

/// The most rooms one stream watches.
pub const MAX_WATCHED_ROOMS: usize = 16;

impl<S: Store> Engine<S> {
    /// Subscribes one of the actor's streams to the live events of `rooms`
    /// (repeats count once): each a room the actor reads (a member, or an
    /// admin).
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for more than [`MAX_WATCHED_ROOMS`],
    /// [`Error::NotFound`] for an unknown room, [`Error::Forbidden`] for
    /// one the actor is no member of, [`Error::Store`].
    pub async fn watch_rooms(
        &self,
        actor: &Actor,
        rooms: &[GroupId],
    ) -> Result<Vec<RoomReceiver>, Error> {
        let rooms: BTreeSet<&GroupId> = rooms.iter().collect();
        if rooms.len() > MAX_WATCHED_ROOMS {
            return Err(Error::Invalid(format!(
                "a stream watches at most {MAX_WATCHED_ROOMS} rooms"
            )));
        }
        for room in &rooms {
            let conversation = ConversationId::room((*room).clone());
            self.require_reader(actor, &conversation).await?;
        }
        Ok(rooms
            .into_iter()
            .map(|r| self.store().rooms().subscribe(r))
            .collect())
    }

    /// Hands a committed room event to every stream watching the room. The
    /// write stands whatever happens here: a failure costs the live event
    /// only (the room's history has it), so it is not returned, as a
    /// receipt's is not.
    pub(crate) async fn publish_room_event(&self, event: Event, message: Option<&Message>) {
        let Some(room) = event_room(&event).cloned() else {
            return;
        };
        let seq = event_seq(&event);
        let Some(data) = EventData::resolved(event, message.cloned()) else {
            return;
        };
        // Room events are the same for every watcher: reactions are
        // counted, and `me` is false (a message read back says the viewer's).
        let nobody = UserId::nobody();
        let Ok(json) = serde_json::to_string(&data.view(&nobody)) else {
            return;
        };
        // A body is kept as sent, maybe pretty-printed: outside strings a
        // line break is only whitespace, and the data is one line.
        let json = json.replace(['\n', '\r'], " ");
        let event = RoomEvent::new(room, data.name(), seq, None, json);
        self.publish_room(&event).await;
    }

    /// Tells the streams watching `room` that `user` left it: its own stop
    /// watching.
    pub(crate) async fn publish_room_left(&self, room: &GroupId, user: &UserId) {
        let event = RoomEvent::new(room.clone(), "left", 0, Some(user.clone()), String::new());
        self.publish_room(&event).await;
    }

    /// Tells the streams watching `room` that `user` started or stopped
    /// typing: every stream but the typist's own shows it.
    pub(crate) async fn publish_room_typing(&self, room: &GroupId, user: &UserId, typing: bool) {
        let data = serde_json::json!({
            "conversation": ConversationId::room(room.clone()),
            "user": user,
            "typing": typing,
        });
        let event = RoomEvent::new(
            room.clone(),
            "typing",
            0,
            Some(user.clone()),
            data.to_string(),
        );
        self.publish_room(&event).await;
    }

    async fn publish_room(&self, event: &RoomEvent) {
        let _ = self.store().publish_room(event).await;
    }
}

fn event_room(event: &Event) -> Option<&GroupId> {
    match event {
        Event::Message { conversation, .. }
        | Event::Edit { conversation, .. }
        | Event::Delete { conversation, .. }
        | Event::Reaction { conversation, .. } => match conversation {
            ConversationId::Room(r) => Some(r),
            _ => None,
        },
        _ => None,
    }
}

fn event_seq(event: &Event) -> crate::Seq {
    match event {
        Event::Message { seq, .. }
        | Event::Edit { seq, .. }
        | Event::Delete { seq, .. }
        | Event::Reaction { seq, .. } => *seq,
        _ => 0,
    }
}
