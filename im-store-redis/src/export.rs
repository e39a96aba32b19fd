//! [`Store::export`] for [`RedisStore`]: each key read whole, entries
//! before messages.
//!
//! Redis has no snapshot of many keys that a client can read at leisure
//! (`MULTI` over the whole store would stop every other client meanwhile,
//! and a cluster cannot run one across slots), so the export reads key by
//! key through the store's own reads: each profile, contact set, member
//! set and index is one command, so each is as it was at one instant, and
//! each message as it was at one instant. Across keys the export is not of
//! one instant; it keeps the one cross-key rule that reads rely on by
//! reading every user's index entries before any message: no read cursor
//! is past the last message exported. A write that lands during an export
//! may be in it or not. For an export of one instant, stop writes (or
//! export a stopped server's Redis, or a replica's) first.
//!
//! Ids come from `SCAN` (`KEYS` on a cluster, on every master). Everything
//! but the messages is kept in memory until the messages are streamed.

use futures_util::Stream;
use im_engine::store::{Marks, Record};
use im_engine::{ConversationId, GroupId, Store, UserId};

use crate::error::{Error, Result};
use crate::migrate::keys_matching;
use crate::store::RedisStore;

/// Messages read per call.
const MESSAGES_PER_READ: u64 = 500;

impl RedisStore {
    /// Every record, in export order.
    pub(crate) fn records(&self) -> impl Stream<Item = Result<Record>> + Send + '_ {
        async_stream::try_stream! {
            let (mut later, mut entries, mut marks) = (Vec::new(), Vec::new(), Vec::new());
            let mut sets = vec![Marks::Suspended];
            for id in self.ids("{u:*}:user", "{u:", "}:user").await? {
                let user = UserId::new(id.as_str()).map_err(|_| bad_key(&id))?;
                let Some(profile) = self.user(&user).await? else { continue };
                let last_seen = self.presence(&user).await?.last_seen;
                yield Record::User { user: profile, last_seen };
                for contact in self.contacts(&user).await? {
                    later.push(Record::Contact { owner: user.clone(), contact });
                }
                for entry in self.entries(&user).await? {
                    entries.push(Record::Entry { user: user.clone(), entry });
                }
                sets.push(Marks::Blocks(user.clone()));
            }
            for id in self.ids("{g:*}:group", "{g:", "}:group").await? {
                let g = GroupId::new(id.as_str()).map_err(|_| bad_key(&id))?;
                let Some(group) = self.group(&g).await? else { continue };
                yield Record::Group(group);
                for member in self.members(&g).await? {
                    later.push(Record::Member { group: g.clone(), member });
                }
                sets.extend([Marks::Requests(g.clone()), Marks::Bans(g.clone())]);
            }
            // Hashes answer in no order: sort as every export does.
            later.sort_by_cached_key(Record::sort_key);
            entries.sort_by_cached_key(Record::sort_key);
            for record in later {
                yield record;
            }
            let mut convs = Vec::new();
            for id in self.ids("{c:*}:log", "{c:", "}:log").await? {
                convs.push(id.parse::<ConversationId>().map_err(|_| bad_key(&id))?);
            }
            for id in self.ids("{c:group:*}:roomlog", "{c:group:", "}:roomlog").await? {
                let r = GroupId::new(id.as_str()).map_err(|_| bad_key(&id))?;
                convs.push(ConversationId::room(r));
            }
            convs.sort();
            for c in convs {
                let last = self.last_seq(&c).await?;
                let mut from = 1;
                while from <= last {
                    let to = last.min(from + MESSAGES_PER_READ - 1);
                    for message in self.messages(&c, from, to).await? {
                        yield Record::Message(message);
                    }
                    from = to + 1;
                }
            }
            for record in entries {
                yield record;
            }
            for set in sets {
                for m in self.marks(&set).await? {
                    marks.push(Record::Mark { set: set.clone(), user: m.user, since: m.since });
                }
            }
            marks.sort_by_cached_key(Record::sort_key);
            for record in marks {
                yield record;
            }
        }
    }
}

fn bad_key(id: &str) -> Error {
    Error::Corrupt(format!("a key names no valid id: {id:?}"))
}

impl RedisStore {
    /// The ids in the keys matching `{tag:*}:what`, sorted (so exports of
    /// the same data are the same).
    async fn ids(&self, rest: &str, open: &str, close: &str) -> Result<Vec<String>> {
        let s = &self.shared;
        let pattern = s.keys.pattern(rest);
        let keys = s.bounded(keys_matching(s, &pattern)).await?;
        let mut ids: Vec<String> = keys
            .iter()
            .filter_map(|k| {
                k.strip_prefix(s.keys.prefix())?
                    .strip_prefix(open)?
                    .strip_suffix(close)
                    .map(str::to_owned)
            })
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }
}
