//! [`Store::export`](im_engine::Store::export) for [`SledStore`]: the
//! records read under the writer's lock.
//!
//! Every write of the store is one batch applied under [`Writer`]'s lock
//! (`write.rs`), so while an export holds it nothing lands: it copies every
//! record but the event feeds and the client-id index (which an import
//! rebuilds from the messages) into memory, releases the lock, and only
//! then decodes and streams them. Writes wait for the copy (about the time
//! to read the store's records once); the export's memory is the size of
//! those records. `last_seen` is written outside the lock and may be a
//! moment newer than the rest.
//!
//! [`Writer`]: crate::write::Writer

use std::collections::HashMap;
use std::sync::Arc;

use futures_core::Stream;
use im_engine::ConversationId;
use im_engine::store::Record;
use sled::IVec;

use crate::codec::{self, ConvState, Entry};
use crate::error::{Error, Result};
use crate::keys::{self, kind};
use crate::store::SledStore;

/// The kinds an export reads.
const EXPORTED: [u8; 8] = [
    kind::USERID_USER,
    kind::GROUPID_GROUP,
    kind::GROUPUSER_MEMBER,
    kind::OWNERCONTACT_CONTACT,
    kind::CONVSEQ_MESSAGE,
    kind::USERCONV_ENTRY,
    kind::USER_LASTSEEN,
    kind::SETUSER_SINCE,
];

impl SledStore {
    /// Every record, in export order.
    pub(crate) fn records(&self) -> impl Stream<Item = Result<Record>> + Send + 'static {
        let (tree, writer) = (self.trees.records.clone(), Arc::clone(&self.writer));
        async_stream::try_stream! {
            let copy = move || writer.frozen(|| read(&tree));
            let pairs = tokio::task::spawn_blocking(copy).await.map_err(Error::Task)??;
            for record in decode(&pairs)? {
                yield record;
            }
        }
    }
}

/// Every exported key and value, and every conversation's state.
fn read(tree: &sled::Tree) -> Result<Vec<(IVec, IVec)>> {
    let mut out = Vec::new();
    for k in EXPORTED.into_iter().chain([kind::CONV_STATE]) {
        for kv in tree.scan_prefix([k]) {
            out.push(kv?);
        }
    }
    Ok(out)
}

fn bad_key(k: u8, key: &[u8]) -> Error {
    Error::Corrupt(format!("bad key in {}: {key:?}", kind::name(k)))
}

/// The records of `pairs`, in export order.
fn decode(pairs: &[(IVec, IVec)]) -> Result<Vec<Record>> {
    let mut states: HashMap<&[u8], ConvState> = HashMap::new();
    let mut last_seen = HashMap::new();
    for (k, v) in pairs {
        match k[0] {
            kind::CONV_STATE => {
                states.insert(&k[1..], ConvState::decode(v)?);
            }
            kind::USER_LASTSEEN => {
                let user = keys::decode_last_seen(k).ok_or_else(|| bad_key(k[0], k))?;
                last_seen.insert(user, codec::to_u64(kind::name(k[0]), v)?);
            }
            _ => {}
        }
    }
    let mut out = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        let bad = || bad_key(k[0], k);
        out.push(match k[0] {
            kind::USERID_USER => {
                let user: im_engine::User = codec::from_json(k[0], v)?;
                let last_seen = last_seen.get(&user.id).copied();
                Record::User { user, last_seen }
            }
            kind::GROUPID_GROUP => Record::Group(codec::from_json(k[0], v)?),
            kind::GROUPUSER_MEMBER => Record::Member {
                group: keys::decode_group_user(k).ok_or_else(bad)?.0,
                member: codec::from_json(k[0], v)?,
            },
            kind::OWNERCONTACT_CONTACT => Record::Contact {
                owner: keys::decode_owner_contact(k).ok_or_else(bad)?.0,
                contact: codec::from_json(k[0], v)?,
            },
            kind::CONVSEQ_MESSAGE => Record::Message(codec::from_json(k[0], v)?),
            kind::USERCONV_ENTRY => {
                let (user, conversation) = keys::decode_user_conv(k).ok_or_else(bad)?;
                let entry = conv_entry(&states, conversation, v)?;
                Record::Entry { user, entry }
            }
            kind::SETUSER_SINCE => {
                let (set, user) = keys::decode_set_user(k).ok_or_else(bad)?;
                let since = codec::to_u64(kind::name(k[0]), v)?;
                Record::Mark { set, user, since }
            }
            _ => continue,
        });
    }
    // Key order is not text order (`bo 0xFF …` sorts after `bob …`).
    out.sort_by_cached_key(Record::sort_key);
    Ok(out)
}

fn conv_entry(
    states: &HashMap<&[u8], ConvState>,
    conversation: ConversationId,
    value: &[u8],
) -> Result<im_engine::ConvEntry> {
    let state = states
        .get(keys::conv(&conversation).as_slice())
        .ok_or_else(|| Error::Corrupt(format!("{conversation} has entries but no state")))?;
    Ok(Entry::decode(value)?.into_conv_entry(conversation, state))
}
