//! [`Store::export`](crate::Store::export) for [`MemoryStore`]: everything
//! copied under its lock, so the export is one instant of the store.

use super::MemoryStore;
use crate::store::export::Record;

impl MemoryStore {
    /// Every record, in export order.
    pub(super) fn records(&self) -> Vec<Record> {
        {
            let st = self.state();
            let mut out = Vec::new();
            for (id, user) in &st.users {
                let last_seen = st.presence.get(id).and_then(|p| p.last_seen);
                let user = user.clone();
                out.push(Record::User { user, last_seen });
            }
            for group in st.groups.values() {
                let group = group.clone();
                out.push(Record::Group(group));
            }
            for (group, members) in &st.members {
                for member in members.values().cloned() {
                    let group = group.clone();
                    out.push(Record::Member { group, member });
                }
            }
            for (owner, contacts) in &st.contacts {
                for contact in contacts.values().cloned() {
                    let owner = owner.clone();
                    out.push(Record::Contact { owner, contact });
                }
            }
            for log in st.logs.values() {
                for message in log.iter().cloned() {
                    out.push(Record::Message(message));
                }
            }
            for (user, inbox) in &st.inboxes {
                for entry in inbox.entries.values().cloned() {
                    let user = user.clone();
                    out.push(Record::Entry { user, entry });
                }
            }
            for (set, marks) in &st.marks {
                for m in marks.values() {
                    let (set, user, since) = (set.clone(), m.user.clone(), m.since);
                    out.push(Record::Mark { set, user, since });
                }
            }
            out.sort_by_cached_key(Record::sort_key);
            out
        }
    }
}
