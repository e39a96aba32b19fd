//! Conformance cases for rooms: messages stored once and read by members,
//! unread and the conversation list worked out when read, the limits, and
//! the member paging.

use super::StoreFactory;
use super::conformance::{all, body, conv, fixture_with, gid, me, root, uid};
use crate::feed::Start;
use crate::{
    Config, ConversationId, ErrorKind, HistoryQuery, JoinPolicy, Limits, ListQuery, SendRequest,
};

fn config(limits: Limits) -> Config {
    Config {
        limits,
        ..Config::default()
    }
}

fn text(n: usize) -> SendRequest {
    SendRequest {
        body: body(n),
        client_id: None,
        from: None,
        reply_to: None,
    }
}

/// Alice's open room `r` with bob in it.
async fn room_of_two<S: crate::Store>(engine: &crate::Engine<S>) {
    let r = gid("r");
    let (_, created) = engine
        .put_room(&me("alice"), &r, Default::default(), Some(JoinPolicy::Open))
        .await
        .expect("alice creates a room");
    assert!(created);
    engine
        .join_room(&me("bob"), &r, &uid("bob"))
        .await
        .expect("bob joins the open room");
}

/// A room message is in the room's history for every member, and in no
/// one's feed: nothing is written per member.
pub async fn room_messages_are_stored_once_and_read_by_members<F: StoreFactory>() {
    let (engine, _data, _clock) = fixture_with::<F>(Config::default()).await;
    room_of_two(&engine).await;
    let room = conv("room:r");
    let before = engine
        .feed(&me("bob"), Start::Oldest, 100)
        .await
        .expect("bob reads his feed");
    for n in 0..3 {
        let (m, new) = engine
            .send(&me("alice"), &room, text(n))
            .await
            .expect("a member sends");
        assert!(new);
        assert_eq!(m.seq, n as u64 + 1);
    }
    let history = engine
        .history(&me("bob"), &room, HistoryQuery::default())
        .await
        .expect("a member reads");
    assert_eq!(
        history.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let after = engine
        .feed(&me("bob"), Start::Oldest, 100)
        .await
        .expect("bob reads his feed");
    assert_eq!(after.events, before.events, "no feed event per member");
    let err = engine
        .history(&me("carol"), &room, HistoryQuery::default())
        .await
        .expect_err("a non-member reads nothing");
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    let err = engine
        .send(&me("carol"), &room, text(9))
        .await
        .expect_err("a non-member sends nothing");
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    // The ids are shared with groups, and a room is no group.
    let err = engine
        .put_group(&me("carol"), &gid("r"), Default::default(), None)
        .await
        .expect_err("a group cannot take a room's id");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let err = engine
        .group(&me("carol"), &gid("r"))
        .await
        .expect_err("a room is no group");
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

/// The list shows a room with its newest message and unread count, worked
/// out when read; reading and sending move the cursor; the list orders
/// rooms by their newest message among the other conversations.
pub async fn rooms_are_in_the_list_with_unread<F: StoreFactory>() {
    let (engine, _data, clock) = fixture_with::<F>(Config::default()).await;
    room_of_two(&engine).await;
    let room = conv("room:r");
    clock.set(5);
    engine
        .send(&me("bob"), &conv("dm:alice:bob"), text(0))
        .await
        .expect("a direct message");
    clock.set(9);
    for n in 0..3 {
        engine
            .send(&me("alice"), &room, text(n))
            .await
            .expect("a member sends");
    }
    let list = engine
        .conversations(&me("bob"), None)
        .await
        .expect("bob's list");
    let ids: Vec<String> = list.iter().map(|c| c.id.to_string()).collect();
    assert_eq!(ids, ["room:r", "dm:alice:bob"], "the room's newest first");
    assert_eq!(list[0].kind, "room");
    assert_eq!(list[0].unread, 3);
    assert_eq!(list[0].last.as_ref().map(|m| m.seq), Some(3));
    let alice = engine
        .conversations(&me("alice"), None)
        .await
        .expect("alice's list");
    let mine = alice.iter().find(|c| c.id == room).expect("alice's room");
    assert_eq!(mine.unread, 0, "a sender has read its own messages");
    let read = engine
        .mark_read(&me("bob"), &room, Some(2))
        .await
        .expect("bob reads");
    assert_eq!((read.read_seq, read.unread), (2, 1));
    let list = engine
        .conversations(&me("bob"), None)
        .await
        .expect("bob's list");
    assert_eq!(list[0].unread, 1);
    // Paging keeps the order.
    let first = engine
        .conversation_page(&me("bob"), &ListQuery::first(1))
        .await
        .expect("first page");
    assert_eq!(first.items[0].id, room);
    let second = engine
        .conversation_page(
            &me("bob"),
            &ListQuery {
                after: first.next.clone(),
                limit: Some(1),
            },
        )
        .await
        .expect("second page");
    assert_eq!(second.items[0].id, conv("dm:alice:bob"));
    assert!(!second.has_more);
    // A member who joins later starts with nothing unread.
    engine
        .join_room(&me("carol"), &gid("r"), &uid("carol"))
        .await
        .expect("carol joins");
    let carol = engine
        .conversations(&me("carol"), None)
        .await
        .expect("carol's list");
    assert_eq!((carol[0].id.clone(), carol[0].unread), (room.clone(), 0));
    // A member who leaves loses the room and its history.
    engine
        .leave_room(&me("bob"), &gid("r"), &uid("bob"))
        .await
        .expect("bob leaves");
    let list = engine
        .conversations(&me("bob"), None)
        .await
        .expect("bob's list");
    assert!(list.iter().all(|c| c.id != room));
    let err = engine
        .history(&me("bob"), &room, HistoryQuery::default())
        .await
        .expect_err("a former member reads nothing");
    assert_eq!(err.kind(), ErrorKind::Forbidden);
}

/// Edits, deletes and reactions work in rooms as elsewhere, and write no
/// feed event either.
pub async fn room_messages_change_in_place<F: StoreFactory>() {
    let (engine, _data, _clock) = fixture_with::<F>(Config::default()).await;
    room_of_two(&engine).await;
    let room = conv("room:r");
    engine
        .send(&me("bob"), &room, text(1))
        .await
        .expect("bob sends");
    let before = engine
        .feed(&me("alice"), Start::Oldest, 100)
        .await
        .expect("alice's feed");
    let edited = engine
        .edit(&me("bob"), &room, 1, body(2))
        .await
        .expect("the sender edits");
    assert!(edited.edited_at.is_some());
    let reacted = engine
        .react(&me("alice"), &room, 1, "👍", true)
        .await
        .expect("a member reacts");
    assert_eq!(reacted.reactions["👍"].len(), 1);
    let err = engine
        .react(&me("carol"), &room, 1, "👍", true)
        .await
        .expect_err("a non-member does not react");
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    let deleted = engine
        .delete(&me("alice"), &room, 1)
        .await
        .expect("the room's owner deletes");
    assert!(deleted.body.is_none() && deleted.reactions.is_empty());
    let after = engine
        .feed(&me("alice"), Start::Oldest, 100)
        .await
        .expect("alice's feed");
    assert_eq!(after.events, before.events, "no feed event per member");
    engine
        .typing(&me("alice"), &room, true)
        .await
        .expect("a member types in a room");
}

/// The room's member limit, the rooms-per-user limit, the join policy and
/// bans are enforced, each before anything is written.
pub async fn room_limits_and_policy_hold<F: StoreFactory>() {
    let limits = Limits {
        room_members: 2,
        rooms_per_user: 2,
        ..Limits::default()
    };
    let (engine, _data, _clock) = fixture_with::<F>(config(limits)).await;
    room_of_two(&engine).await;
    let r = gid("r");
    let err = engine
        .join_room(&me("carol"), &r, &uid("carol"))
        .await
        .expect_err("the room is full");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let view = engine
        .room(&me("carol"), &r)
        .await
        .expect("anyone reads a room");
    assert_eq!(view.members, 2);
    let err = engine
        .put_room(
            &me("bob"),
            &gid("x"),
            Default::default(),
            Some(JoinPolicy::Approval),
        )
        .await
        .expect_err("rooms are open or invite");
    assert_eq!(err.kind(), ErrorKind::Invalid);
    engine
        .put_room(&me("bob"), &gid("s"), Default::default(), None)
        .await
        .expect("bob's second room");
    let err = engine
        .put_room(&me("bob"), &gid("t"), Default::default(), None)
        .await
        .expect_err("bob is in two rooms, the most allowed");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let err = engine
        .join_room(&me("carol"), &gid("s"), &uid("carol"))
        .await
        .expect_err("an invite room takes no one by itself");
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    engine
        .join_room(&me("bob"), &gid("s"), &uid("carol"))
        .await
        .expect("its owner adds carol");
    let err = engine
        .leave_room(&me("carol"), &gid("s"), &uid("bob"))
        .await
        .expect_err("the owner does not leave");
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    let err = engine
        .leave_room(&me("bob"), &gid("s"), &uid("bob"))
        .await
        .expect_err("the owner does not leave");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let list = engine
        .conversations(&me("carol"), None)
        .await
        .expect("list");
    assert_eq!(list[0].id, ConversationId::room(gid("s")));
}

/// A room's members page by user id, reading only the page.
pub async fn room_members_page_by_id<F: StoreFactory>() {
    let (engine, _data, _clock) = fixture_with::<F>(Config::default()).await;
    let r = gid("r");
    engine
        .put_room(&me("alice"), &r, Default::default(), Some(JoinPolicy::Open))
        .await
        .expect("alice creates a room");
    for n in 0..7 {
        let u = uid(&format!("m{n}"));
        engine
            .put_user(&root(), &u, Default::default())
            .await
            .expect("admin creates users");
        engine
            .join_room(&crate::Actor::user(u.clone()), &r, &u)
            .await
            .expect("each joins");
    }
    let mut seen = Vec::new();
    let mut query = ListQuery::first(3);
    loop {
        let page = engine
            .room_members(&me("alice"), &r, &query)
            .await
            .expect("a member lists");
        seen.extend(page.items.iter().map(|m| m.id.to_string()));
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    let want: Vec<String> = ["alice", "m0", "m1", "m2", "m3", "m4", "m5", "m6"]
        .map(String::from)
        .into();
    assert_eq!(seen, want);
    let err = engine
        .room_members(&me("bob"), &r, &all())
        .await
        .expect_err("a non-member lists nothing");
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    let view = engine
        .room(&me("bob"), &r)
        .await
        .expect("anyone reads a room");
    assert_eq!(view.members, 8);
}
