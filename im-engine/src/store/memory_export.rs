//! [`Store::export`](crate::Store::export) for [`MemoryStore`]: everything
//! copied under its lock, so the export is one instant of the store.

use std::collections::HashMap;
use std::hash::Hash;

use super::MemoryStore;
use crate::store::export::Record;

/// The map's entries ordered by key, so that exports are reproducible.
fn sorted<K: Ord + Hash, V>(map: &HashMap<K, V>) -> Vec<(&K, &V)> {
    let mut all: Vec<_> = map.iter().collect();
    all.sort_by(|a, b| a.0.cmp(b.0));
    all
}

impl MemoryStore {
    /// Every record, in export order.
    pub(super) fn records(&self) -> Vec<Record> {
        {
            let st = self.state();
            let mut out = Vec::new();
            for (id, user) in sorted(&st.users) {
                let last_seen = st.presence.get(id).and_then(|p| p.last_seen);
                let user = user.clone();
                out.push(Record::User { user, last_seen });
            }
            for (_, group) in sorted(&st.groups) {
                let group = group.clone();
                out.push(Record::Group(group));
            }
            for (group, members) in sorted(&st.members) {
                for member in members.values().cloned() {
                    let group = group.clone();
                    out.push(Record::Member { group, member });
                }
            }
            for (owner, contacts) in sorted(&st.contacts) {
                for contact in contacts.values().cloned() {
                    let owner = owner.clone();
                    out.push(Record::Contact { owner, contact });
                }
            }
            for (_, log) in sorted(&st.logs) {
                for message in log.iter().cloned() {
                    out.push(Record::Message(message));
                }
            }
            for (user, entries) in sorted(&st.entries) {
                for entry in entries.values().cloned() {
                    let user = user.clone();
                    out.push(Record::Entry { user, entry });
                }
            }
            out
        }
    }
}
