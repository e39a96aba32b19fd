//! Rooms in the writer's batches: membership read one key at a time and
//! the member count kept in `room_members`, so a room's send, join or
//! leave costs the same with ten members or a million.

use im_engine::store::{Marks, MemberChange, MemberUpdate, Updated};
use im_engine::{GroupId, GroupKind, UserId};

use crate::codec;
use crate::error::Result;
use crate::keys::{self, kind};
use crate::write::Batch;

/// Whether `user` is a member of `group` (or room): one key.
pub(crate) fn is_member(p: &Batch<'_>, group: &GroupId, user: &UserId) -> Result<bool> {
    Ok(p.get(&keys::group_user(group, user))?.is_some())
}

/// A room's member count (0 without the key).
pub(crate) fn count(p: &Batch<'_>, room: &GroupId) -> Result<u64> {
    p.get(&keys::room_members(room))?
        .map_or(Ok(0), |v| codec::to_u64(kind::name(kind::ROOM_MEMBERS), &v))
}

fn put_count(p: &mut Batch<'_>, room: &GroupId, n: u64) {
    p.insert(keys::room_members(room), n.to_be_bytes().to_vec());
}

/// Whether `group` is a room, once this batch lands.
pub(crate) fn is_room(p: &Batch<'_>, group: &GroupId) -> Result<bool> {
    Ok(match p.get(&keys::group(group))? {
        Some(v) => {
            let g: im_engine::Group = codec::from_json(kind::GROUPID_GROUP, &v)?;
            g.kind == GroupKind::Room
        }
        None => false,
    })
}

/// Applies a member change of a room from a change set (the owner of a
/// new room), keeping the count.
pub(crate) fn change(p: &mut Batch<'_>, room: &GroupId, change: &MemberChange) -> Result<()> {
    let n = count(p, room)?;
    match change {
        MemberChange::Put(m) => {
            if !is_member(p, room, &m.id)? {
                put_count(p, room, n + 1);
            }
            p.insert(keys::group_user(room, &m.id), codec::json(m)?);
        }
        MemberChange::Remove(id) => {
            if is_member(p, room, id)? {
                put_count(p, room, n.saturating_sub(1));
            }
            p.remove(keys::group_user(room, id));
        }
    }
    Ok(())
}

/// A room's join or leave: the member set and its count only.
pub(crate) fn update_member(p: &mut Batch<'_>, u: &MemberUpdate) -> Result<Updated> {
    match &u.change {
        MemberChange::Put(m) => {
            if is_member(p, &u.group, &m.id)? {
                return Ok(Updated::Unchanged);
            }
            if p.get(&keys::mark(&Marks::Bans(u.group.clone()), &m.id))?
                .is_some()
            {
                return Ok(Updated::Banned);
            }
            if count(p, &u.group)? >= u.max_members as u64 {
                return Ok(Updated::Full);
            }
        }
        MemberChange::Remove(id) => {
            if !is_member(p, &u.group, id)? {
                return Ok(Updated::Unchanged);
            }
        }
    }
    change(p, &u.group, &u.change)?;
    Ok(Updated::Changed)
}
