//! Rooms: a send, a join or a leave is one script in the room's slot
//! (`{c:group:<room>}`: its members, bans and log), on a single Redis and
//! on a cluster alike; nothing is written per member.

use im_engine::ConversationId;
use im_engine::store::Marks;
use im_engine::store::{MemberChange, MemberUpdate, Outgoing, Sent, Updated};
use redis::Value;

use crate::codec::{self, to_json};
use crate::error::{Result, corrupt};
use crate::scripts;
use crate::store::Shared;
use crate::write::{decode_sent, reply_arg};

/// Stores a room's message once on a single Redis (see
/// [`im_engine::Store::send`]); the caller bounds it in time.
pub(crate) async fn send(s: &Shared, out: &Outgoing, room: &im_engine::GroupId) -> Result<Sent> {
    let m = &out.message;
    let k = &s.keys;
    let c = &m.conversation;
    let v: Value = scripts::SEND_ROOM
        .key(k.client_ids(c))
        .key(k.log(c))
        .key(k.members(room))
        .key(k.changed(c))
        .key(k.fire(0))
        .arg(m.from.as_str())
        .arg(m.ts)
        .arg(m.body.get())
        .arg(m.client_id.as_deref().unwrap_or(""))
        .arg(reply_arg(m))
        .arg(c.to_string())
        .invoke_async(&mut s.conn())
        .await?;
    decode_sent(out, &v)
}

/// A room's join or leave: the member set only.
pub(crate) async fn update_member(s: &Shared, u: &MemberUpdate) -> Result<Updated> {
    let k = &s.keys;
    let (op, user, member) = match &u.change {
        MemberChange::Put(m) => ("+", &m.id, to_json(m)?),
        MemberChange::Remove(id) => ("-", id, String::new()),
    };
    let v: Value = s
        .bounded(async {
            let v = scripts::MEMBER_ROOM
                .key(k.members(&u.group))
                .key(k.marks(&Marks::Bans(u.group.clone())))
                .key(k.member_ids(&u.group))
                .arg(op)
                .arg(user.as_str())
                .arg(member)
                .arg(u.max_members)
                .arg(ConversationId::group(u.group.clone()).to_string())
                .arg(if s.cluster() { "" } else { s.keys.prefix() })
                .invoke_async(&mut s.conn())
                .await?;
            Ok(v)
        })
        .await?;
    let flag = codec::array(&v)?
        .first()
        .ok_or_else(|| corrupt("room member script answer"))
        .and_then(codec::number)?;
    Ok(match flag {
        0 => Updated::Unchanged,
        1 => Updated::Changed,
        2 => Updated::Full,
        3 => Updated::Banned,
        n => return Err(corrupt(format!("room member script answer {n}"))),
    })
}
