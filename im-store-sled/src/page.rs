//! Pages of lists that the key order serves: a group's members, by id.

use im_engine::{GroupId, Member, UserId};

use crate::codec;
use crate::error::Result;
use crate::keys::{self, kind};
use crate::store::SledStore;

impl SledStore {
    /// Up to `limit` members of `group` with an id after `after`: a range
    /// scan of `m group 0xFF …` from just past `after`, reading only the
    /// page.
    pub(crate) fn members_page(
        &self,
        group: &GroupId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<Member>> {
        let prefix = keys::prefix(kind::GROUPUSER_MEMBER, group.as_str());
        // Ids never contain 0x00, so `after 0x00` is the first key past it.
        let start = after.map_or_else(
            || prefix.clone(),
            |a| [keys::group_user(group, a), vec![0]].concat(),
        );
        self.trees
            .records
            .range(start..)
            .take_while(|kv| kv.as_ref().map_or(true, |(k, _)| k.starts_with(&prefix)))
            .take(limit)
            .map(|kv| codec::from_json(kind::GROUPUSER_MEMBER, &kv?.1))
            .collect()
    }
}
