//! Pages of the lists that grow without bound: contacts, group members and
//! the conversation list.
//!
//! Each list has one total order, and a cursor names a position in it: the
//! next page holds the items strictly after it. The answer's `next` is the
//! cursor of its last item, so a client pages on with `?after=<next>` until
//! `has_more` is false. Cursors are text, opaque to clients but documented
//! (`docs/API.md`):
//!
//! | list | order | cursor |
//! |---|---|---|
//! | members | user id, bytewise | the user id |
//! | contacts | newest link first | `<since>:<order>:<id>` |
//! | conversations | most recent activity first, ties by id | `<activity>:<conversation id>` |
//!
//! Ids never contain `:` except a conversation id, which comes last, so
//! each cursor splits at its first colons.

use std::cmp::Ordering;

use crate::data::{Contact, ConvEntry, ConversationId, Timestamp, UserId};
use crate::error::Error;

/// Default page size of the members and contacts lists.
pub const LIST_PAGE_DEFAULT: usize = 100;
/// Largest page of the members and contacts lists.
pub const LIST_PAGE_MAX: usize = 1000;

/// Which page of a list: the items after `after` (from the start without
/// it), at most `limit` of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ListQuery {
    /// The cursor of the last item seen (a page's `next`).
    pub after: Option<String>,
    /// At most this many items.
    pub limit: Option<usize>,
}

impl ListQuery {
    /// The first page of at most `limit` items.
    pub fn first(limit: usize) -> Self {
        Self {
            after: None,
            limit: Some(limit),
        }
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in the list's order.
    pub items: Vec<T>,
    /// Whether items follow the last one.
    pub has_more: bool,
    /// The cursor of the last item, when `has_more`.
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// The page of `limit` items out of `items` (the items after the
    /// cursor, in order, of which up to `limit + 1` were read: one more
    /// than the page tells whether more follow), with `cursor` naming the
    /// last one.
    pub(crate) fn cut(mut items: Vec<T>, limit: usize, cursor: impl Fn(&T) -> String) -> Self {
        let has_more = items.len() > limit;
        items.truncate(limit);
        let next = has_more.then(|| items.last().map(&cursor)).flatten();
        Self {
            items,
            has_more,
            next,
        }
    }

    /// The same page with each item mapped.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            has_more: self.has_more,
            next: self.next,
        }
    }
}

fn bad_cursor() -> Error {
    Error::Invalid("after is not a cursor of this list".into())
}

fn number(text: &str) -> Result<u64, Error> {
    text.parse().map_err(|_| bad_cursor())
}

/// A members cursor: the user id.
pub(crate) fn member_cursor(after: Option<&str>) -> Result<Option<UserId>, Error> {
    after
        .map(|a| UserId::new(a).map_err(|_| bad_cursor()))
        .transpose()
}

/// A contact's place in its list, as a contact to compare with.
pub(crate) fn contact_cursor(after: Option<&str>) -> Result<Option<Contact>, Error> {
    let Some(after) = after else { return Ok(None) };
    let mut parts = after.splitn(3, ':');
    let (Some(since), Some(order), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad_cursor());
    };
    Ok(Some(Contact {
        since: number(since)?,
        order: number(order)?,
        id: UserId::new(id).map_err(|_| bad_cursor())?,
    }))
}

/// The cursor of a contact.
pub(crate) fn contact_key(c: &Contact) -> String {
    format!("{}:{}:{}", c.since, c.order, c.id)
}

/// A conversation's place in the list: its activity and id.
pub(crate) fn entry_cursor(
    after: Option<&str>,
) -> Result<Option<(Timestamp, ConversationId)>, Error> {
    let Some(after) = after else { return Ok(None) };
    let (activity, id) = after.split_once(':').ok_or_else(bad_cursor)?;
    let id: ConversationId = id.parse().map_err(|_| bad_cursor())?;
    Ok(Some((number(activity)?, id)))
}

/// The cursor of an index entry.
pub(crate) fn entry_key(e: &ConvEntry) -> String {
    format!("{}:{}", e.activity, e.conversation)
}

/// The conversation list's order: most recent activity first, ties by id.
pub(crate) fn entry_order(
    a: (Timestamp, &ConversationId),
    b: (Timestamp, &ConversationId),
) -> Ordering {
    b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_invalid() {
        let c = Contact {
            id: UserId::new("bob").unwrap(),
            since: 12,
            order: 3,
        };
        assert_eq!(contact_cursor(Some(&contact_key(&c))).unwrap(), Some(c));
        let e = ConvEntry {
            conversation: "dm:a:b".parse().unwrap(),
            read_seq: 0,
            activity: 7,
        };
        let (at, id) = entry_cursor(Some(&entry_key(&e))).unwrap().unwrap();
        assert_eq!((at, id), (7, e.conversation));
        for bad in ["", "x", "1:2", "a:2:bob", "1:2:b b"] {
            assert!(contact_cursor(Some(bad)).is_err(), "{bad}");
        }
        for bad in ["", "7", "x:dm:a:b", "7:dm:a"] {
            assert!(entry_cursor(Some(bad)).is_err(), "{bad}");
        }
        assert!(member_cursor(Some("a b")).is_err());
    }
}
