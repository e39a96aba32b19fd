//! A page of a group's (or room's) members by id, read from the index of
//! their ids (`P{c:group:G}:memberids`, a sorted set of score 0) instead
//! of the whole members hash: a page costs `O(log n + limit)` however big
//! the room, so paging through a million members is linear overall.

use im_engine::{GroupId, Member, UserId};

use crate::codec::from_json;
use crate::error::{Result, corrupt};
use crate::scripts;
use crate::store::Shared;

/// Up to `limit` members of `group` with ids after `after`, by id (see
/// [`im_engine::Store::members_after`]); the caller bounds it in time.
pub(crate) async fn page(
    s: &Shared,
    group: &GroupId,
    after: Option<&UserId>,
    limit: usize,
) -> Result<Vec<Member>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let read: Vec<(String, Option<String>)> = scripts::MEMBERS_PAGE
        .key(s.keys.member_ids(group))
        .key(s.keys.members(group))
        .arg(after.map_or("", UserId::as_str))
        // Redis counts in i64; no page is that long.
        .arg(i64::try_from(limit).unwrap_or(i64::MAX))
        .invoke_async(&mut s.conn())
        .await?;
    read.iter()
        .map(|(id, record)| match record {
            Some(json) => from_json("member", json),
            None => Err(corrupt(format!(
                "the member index of {group} names {id:?}, who is no member"
            ))),
        })
        .collect()
}
