//! Test data written straight through the store, where going through the
//! engine would measure the setup instead of the figure (10,000 joins fan a
//! member event out to every member: O(n²) appends).

use im_engine::store::{Changes, EntryChange, MemberChange};
use im_engine::{
    Actor, ConvEntry, ConversationId, Engine, Group, GroupId, GroupKind, JoinPolicy, Member, Role,
    Store, UserId,
};

/// The id of user `i`.
pub fn uid(i: usize) -> UserId {
    UserId::new(format!("u{i}")).expect("valid id")
}

/// Creates users `u0` … `u{n-1}`.
///
/// # Errors
///
/// When the engine fails.
pub async fn users<S: Store>(engine: &Engine<S>, n: usize) -> Result<(), im_engine::Error> {
    let root = Actor::admin(UserId::new("root").expect("valid id"));
    for i in 0..n {
        engine.put_user(&root, &uid(i), Default::default()).await?;
    }
    Ok(())
}

/// Creates room `id` owned by `u0` with members `u0` … `u{n-1}`, in commits
/// of at most 1,000 members; only `u0`, who sends, gets its entry (a join
/// writes one per member, but no send reads them).
///
/// # Errors
///
/// When the store fails.
pub async fn room<S: Store>(
    engine: &Engine<S>,
    id: &str,
    n: usize,
) -> Result<(), im_engine::StoreError> {
    let rid = GroupId::new(id).expect("valid id");
    let room = Group {
        id: rid.clone(),
        kind: GroupKind::Room,
        owner: uid(0),
        fields: Default::default(),
        join: JoinPolicy::Open,
        created_at: 1,
    };
    let entry = ConvEntry {
        conversation: ConversationId::room(rid.clone()),
        read_seq: 0,
        activity: 1,
    };
    for (c, chunk) in (0..n).collect::<Vec<_>>().chunks(1000).enumerate() {
        let mut changes = Changes {
            groups: vec![room.clone()],
            ..Changes::default()
        };
        if c == 0 {
            changes
                .entries
                .push((uid(0), EntryChange::Put(entry.clone())));
        }
        for &i in chunk {
            let role = if i == 0 { Role::Owner } else { Role::Member };
            changes.members.push((
                rid.clone(),
                MemberChange::Put(Member {
                    id: uid(i),
                    role,
                    since: 1,
                }),
            ));
        }
        engine.store().commit(&changes).await.map_err(Into::into)?;
    }
    Ok(())
}

/// Creates group `id` owned by `u0` with members `u0` … `u{n-1}`, in
/// commits of at most 1,000 members.
///
/// # Errors
///
/// When the store fails.
pub async fn group<S: Store>(
    engine: &Engine<S>,
    id: &str,
    n: usize,
) -> Result<(), im_engine::StoreError> {
    let gid = GroupId::new(id).expect("valid id");
    let conversation = ConversationId::group(gid.clone());
    let group = Group {
        id: gid.clone(),
        kind: Default::default(),
        owner: uid(0),
        fields: Default::default(),
        join: JoinPolicy::Open,
        created_at: 1,
    };
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut changes = Changes {
            groups: vec![group.clone()],
            ..Changes::default()
        };
        for &i in chunk {
            let role = if i == 0 { Role::Owner } else { Role::Member };
            changes.members.push((
                gid.clone(),
                MemberChange::Put(Member {
                    id: uid(i),
                    role,
                    since: 1,
                }),
            ));
            let entry = ConvEntry {
                conversation: conversation.clone(),
                read_seq: 0,
                activity: 1,
            };
            changes.entries.push((uid(i), EntryChange::Put(entry)));
        }
        engine.store().commit(&changes).await.map_err(Into::into)?;
    }
    Ok(())
}
