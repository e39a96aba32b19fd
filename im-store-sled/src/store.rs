//! [`SledStore`]: opening, closing, and the [`Store`] trait.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use im_engine::store::{
    Changes, Mark, Marks, MemberUpdate, MessageUpdate, MessageUpdated, Outgoing, Recipients,
    RoomBus, Sent, Updated,
};
use im_engine::{
    Contact, ConvEntry, ConversationId, Epoch, Feed, Firehose, Group, GroupId, Member, Message,
    Notifier, Presence, Seq, SignalBus, Store, Timestamp, User, UserId,
};
use serde::de::DeserializeOwned;

use crate::codec::{self, ConvState, Entry};
use crate::db::{Trees, open_db, reclaim, wait_released};
use crate::error::{Error, Result};
use crate::flush::{self, Files, GroupCommit};
use crate::keys::{self, kind, meta, tree};
use crate::wal::{self, Log};
use crate::write::Writer;
use crate::{Durability, FORMAT_VERSION, SledConfig, feed, migrate, repair};

/// What sled deferred while writing at most this many keys is freed on
/// the calling thread; more, on the blocking pool.
const INLINE_WRITE_KEYS: usize = 512;

/// The engine's data in a sled database: see the [crate docs](crate).
///
/// Dropping it stops its flusher thread and closes the database;
/// [`SledStore::close`] does the same and also waits until the directory
/// can be opened again.
#[derive(Debug)]
pub struct SledStore {
    pub(crate) trees: Trees,
    pub(crate) writer: Arc<Writer>,
    log: Arc<Log>,
    group_commit: GroupCommit,
    durability: Durability,
    notifier: Notifier,
    signals: SignalBus,
    rooms: RoomBus,
    epoch: Epoch,
    /// Users with a live stream in this process. Presence is process-local:
    /// after a restart everyone is offline, so it is not stored.
    online: Mutex<HashSet<UserId>>,
    path: PathBuf,
}

impl SledStore {
    /// Opens the database at `config.path`, creating it (with a new random
    /// epoch) when the directory holds none. Blocks while sled recovers, and
    /// while it migrates a directory of format 1 to
    /// [`FORMAT_VERSION`](crate::FORMAT_VERSION) (a migration a crash
    /// interrupted starts over or finishes here).
    ///
    /// # Errors
    ///
    /// [`Error::Locked`] when another process has it open,
    /// [`Error::UnsupportedVersion`] for a format version newer than this
    /// build's (or unknown),
    /// [`Error::Corrupt`], [`Error::Open`] or [`Error::OpenPanicked`] for
    /// damaged or foreign files.
    pub fn open(config: SledConfig) -> Result<Self> {
        let path = config.path.clone();
        // sled creates an empty `db` file on open and fills it on its first
        // flush; our first flush holds the format version.
        let had_data = fs::metadata(path.join("db")).is_ok_and(|m| m.len() > 0);
        let created = flush::missing_dirs(&path);
        let db = open_db(&config)?;
        // What the log holds and sled lost, before anything reads.
        let replayed = wal::replay::replay(&db, &path)?;
        if replayed.applied > 0 || replayed.torn {
            db.flush()?;
            tracing::info!(
                writes = replayed.applied,
                torn_tail = replayed.torn,
                "replayed the write-ahead log"
            );
        }
        let meta = db.open_tree(tree::META)?;
        let epoch = match meta.get(meta::VERSION)? {
            Some(v) => {
                match codec::to_u32(tree::META, &v)? {
                    // Old trees may be left by a crash at the end of a migration.
                    FORMAT_VERSION => migrate::drop_v1_trees(&db)?,
                    1 => migrate::from_v1(&db, &meta)?,
                    found => {
                        return Err(Error::UnsupportedVersion {
                            found,
                            supported: FORMAT_VERSION,
                        });
                    }
                }
                let epoch = meta
                    .get(meta::EPOCH)?
                    .ok_or_else(|| Error::Corrupt("the store has no epoch".into()))?;
                Epoch(codec::to_u64(tree::META, &epoch)?)
            }
            // sled recovers what it cannot read as an empty database: do not
            // start over on top of it.
            None if had_data => {
                return Err(Error::Corrupt(format!(
                    "the database at {} holds no im-store-sled format version: \
                     it is damaged, or not an im-store-sled database",
                    path.display()
                )));
            }
            None => {
                let epoch = Epoch::random();
                let mut batch = sled::Batch::default();
                batch.insert(meta::EPOCH, &epoch.0.to_be_bytes()[..]);
                batch.insert(meta::VERSION, &FORMAT_VERSION.to_be_bytes()[..]);
                meta.apply_batch(batch)?;
                db.flush()?;
                epoch
            }
        };
        let trees = Trees::open(&db, meta)?;
        let indexed = repair::index_followers(&trees.records, &trees.meta)?;
        if indexed > 0 {
            db.flush()?;
            tracing::info!(contacts = indexed, "indexed who has whom in their contacts");
        }
        let repaired = repair::drop_stray_group_entries(&trees.records, &trees.meta)?;
        if repaired > 0 {
            db.flush()?;
            tracing::warn!(
                entries = repaired,
                "removed index entries of groups their users had left (written by an older build)"
            );
        }
        // What opening wrote reaches stable storage before the first
        // answer, even in periodic mode.
        let files = Files::open(&path, &created).map_err(|e| Error::Open {
            path: path.clone(),
            source: e.into(),
        })?;
        // sled's copy of what was replayed is on stable storage now.
        let next = replayed.next;
        replayed.forget().map_err(sled::Error::from)?;
        let logging = config.durability == Durability::Flush;
        let log = Arc::new(Log::start(&path, next, logging)?);
        let writer = Arc::new(Writer::new(trees.records.clone(), Arc::clone(&log))?);
        // The flusher thread keeps the one `Db` handle; the trees keep the
        // database open for reads and writes.
        let group_commit = GroupCommit::start(db, files, Arc::clone(&log))?;
        Ok(Self {
            trees,
            writer,
            log,
            group_commit,
            durability: config.durability,
            notifier: Notifier::new(),
            signals: SignalBus::new(),
            rooms: RoomBus::new(),
            epoch,
            online: Mutex::default(),
            path,
        })
    }

    /// The writer (tests: its checks and settings).
    #[cfg(test)]
    pub(crate) fn writer(&self) -> &Writer {
        &self.writer
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The durability policy it was opened with.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Flushes, stops the flusher thread, closes the database and waits
    /// (up to ten seconds) until sled has released its lock, so that the
    /// directory can be opened again at once. Blocks.
    ///
    /// # Errors
    ///
    /// [`Error::Sled`] when the last flush fails, [`Error::CloseTimeout`]
    /// when something still holds the database ten seconds later.
    pub fn close(mut self) -> Result<()> {
        self.writer.stop();
        self.log.stop();
        let flushed = self.group_commit.stop();
        let path = self.path.clone();
        drop(self);
        flushed?;
        wait_released(&path, Duration::from_secs(10))
    }

    fn online(&self) -> MutexGuard<'_, HashSet<UserId>> {
        self.online.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the writes committed so far (`keys` keys of them this
    /// caller's) as durable as the policy promises, and meanwhile frees
    /// what sled deferred while writing them (see [`reclaim`]): after a
    /// large write, on the blocking pool, so that it does not hold up a
    /// worker thread.
    async fn durable(&self, keys: usize) -> Result<()> {
        // Registers for the log's sync at once, so that it overlaps.
        let flushed = match self.durability {
            Durability::Flush => Some(self.log.synced(self.log.appended())),
            Durability::Periodic { .. } => None,
        };
        if keys <= INLINE_WRITE_KEYS {
            reclaim(keys);
        } else {
            // The write has committed whatever happens here: freeing is no
            // reason to answer it with an error.
            let _ = tokio::task::spawn_blocking(move || reclaim(keys)).await;
        }
        match flushed {
            Some(flushed) => flushed.await,
            None => Ok(()),
        }
    }

    fn get<T: DeserializeOwned>(&self, kind: u8, key: &[u8]) -> Result<Option<T>> {
        self.trees
            .records
            .get(key)?
            .map(|v| codec::from_json(kind, &v))
            .transpose()
    }

    fn scan<T: DeserializeOwned>(&self, kind: u8, id: &str) -> Result<Vec<T>> {
        self.trees
            .records
            .scan_prefix(keys::prefix(kind, id))
            .map(|kv| codec::from_json(kind, &kv?.1))
            .collect()
    }

    fn state(&self, conv: &[u8]) -> Result<Option<ConvState>> {
        self.trees
            .records
            .get(keys::conv_state(conv))?
            .map(|v| ConvState::decode(&v))
            .transpose()
    }

    /// An index entry as the engine sees it: with its conversation's state.
    fn conv_entry(&self, conversation: ConversationId, entry: &[u8]) -> Result<ConvEntry> {
        let entry = Entry::decode(entry)?;
        let state = self
            .state(&keys::conv(&conversation))?
            .ok_or_else(|| Error::Corrupt(format!("{conversation} has entries but no state")))?;
        Ok(entry.into_conv_entry(conversation, &state))
    }
}

impl Store for SledStore {
    type Error = Error;

    fn epoch(&self) -> Epoch {
        self.epoch
    }

    fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    fn signals(&self) -> &SignalBus {
        &self.signals
    }

    fn rooms(&self) -> &RoomBus {
        &self.rooms
    }

    async fn send(&self, send: &Outgoing) -> Result<Sent> {
        // An entry read and a feed event written per recipient. A group's
        // recipients are read inside the write; its entry holders are
        // about as many, and cheap to count beforehand.
        let recipients = match &send.recipients {
            Recipients::Users(users) => users.len() as u64,
            Recipients::Room(_) => 0,
            Recipients::Members(_) => self
                .state(&keys::conv(&send.message.conversation))?
                .map_or(0, |s| s.holders),
        };
        let keys = usize::try_from(2 * recipients).unwrap_or(usize::MAX);
        let (sent, recipients) = self.writer.send(send.clone()).await?;
        // A duplicate may name a message whose own send is still waiting
        // for its flush: answer it only once that is durable too.
        let wrote = match sent {
            Sent::New(_) => 2 * recipients.len(),
            Sent::Duplicate(_) => keys,
            Sent::NotMember | Sent::Blocked => return Ok(sent),
        };
        self.durable(wrote).await?;
        self.notifier.wake(&recipients);
        Ok(sent)
    }

    async fn update_member(&self, update: &MemberUpdate) -> Result<Updated> {
        let (updated, woken) = self.writer.update_member(update.clone()).await?;
        if updated == Updated::Changed {
            self.durable(woken.len()).await?;
            self.notifier.wake(&woken);
        }
        Ok(updated)
    }

    async fn update_message(&self, update: &MessageUpdate) -> Result<MessageUpdated> {
        let (updated, woken) = self.writer.update_message(update.clone()).await?;
        if matches!(updated, MessageUpdated::Changed(_)) {
            self.durable(woken.len()).await?;
            self.notifier.wake(&woken);
        }
        Ok(updated)
    }

    async fn commit(&self, changes: &Changes) -> Result<()> {
        let keys = changes.users.len()
            + changes.contacts.len()
            + changes.groups.len()
            + changes.members.len()
            + changes.entries.len()
            + changes.events.len()
            + changes.marks.len()
            + changes.erase.len();
        self.writer.commit(changes.clone())?.await?;
        self.durable(keys).await?;
        self.notifier.wake(changes.events.iter().map(|(u, ..)| u));
        Ok(())
    }

    async fn firehose(&self, part: usize, after: u64, limit: usize) -> Result<Firehose> {
        if part > 0 {
            return Ok(Firehose::default());
        }
        crate::fire::read(&self.trees.records, after, limit)
    }

    async fn acked(&self, name: &str) -> Result<Option<String>> {
        self.trees
            .records
            .get(keys::acked(name))?
            .map(|v| {
                String::from_utf8(v.to_vec()).map_err(|_| {
                    Error::Corrupt(format!(
                        "{} of {name} is no text",
                        kind::name(kind::NAME_ACKED)
                    ))
                })
            })
            .transpose()
    }

    /// Written through the log like every write, but answered without
    /// waiting for its sync: an acknowledgement lost in a crash only sends
    /// its events again, which at-least-once delivery allows, and a webhook
    /// waiting for a sync per page would take syncs from the sends.
    async fn set_acked(&self, name: &str, value: &str) -> Result<()> {
        self.writer
            .put(keys::acked(name), value.as_bytes().to_vec())
            .await
    }

    async fn user(&self, id: &UserId) -> Result<Option<User>> {
        self.get(kind::USERID_USER, &keys::user(id))
    }

    async fn contact(&self, owner: &UserId, id: &UserId) -> Result<Option<Contact>> {
        self.get(kind::OWNERCONTACT_CONTACT, &keys::owner_contact(owner, id))
    }

    async fn contacts(&self, owner: &UserId) -> Result<Vec<Contact>> {
        self.scan(kind::OWNERCONTACT_CONTACT, owner.as_str())
    }

    async fn followers(&self, user: &UserId) -> Result<Vec<UserId>> {
        let prefix = keys::prefix(kind::CONTACTOWNER_, user.as_str());
        self.trees
            .records
            .scan_prefix(prefix)
            .map(|kv| {
                let (key, _) = kv?;
                keys::last_user(&key)
                    .ok_or_else(|| Error::Corrupt(format!("bad contactowner_ key {key:?}")))
            })
            .collect()
    }

    async fn group(&self, id: &GroupId) -> Result<Option<Group>> {
        self.get(kind::GROUPID_GROUP, &keys::group(id))
    }

    async fn member(&self, group: &GroupId, user: &UserId) -> Result<Option<Member>> {
        self.get(kind::GROUPUSER_MEMBER, &keys::group_user(group, user))
    }

    async fn members(&self, group: &GroupId) -> Result<Vec<Member>> {
        self.scan(kind::GROUPUSER_MEMBER, group.as_str())
    }

    async fn last_seq(&self, conversation: &ConversationId) -> Result<Seq> {
        Ok(self
            .state(&keys::conv(conversation))?
            .map_or(0, |s| s.last_seq))
    }

    async fn messages(
        &self,
        conversation: &ConversationId,
        from: Seq,
        to: Seq,
    ) -> Result<Vec<Message>> {
        let from = from.max(1);
        if from > to {
            return Ok(Vec::new());
        }
        let conv = keys::conv(conversation);
        self.trees
            .records
            .range(keys::conv_seq(&conv, from)..=keys::conv_seq(&conv, to))
            .map(|kv| codec::from_json(kind::CONVSEQ_MESSAGE, &kv?.1))
            .collect()
    }

    /// The entry, then its conversation's state: a send in between may have
    /// moved the conversation's activity, which the entry then shows, as
    /// it would a moment later.
    async fn entry(
        &self,
        user: &UserId,
        conversation: &ConversationId,
    ) -> Result<Option<ConvEntry>> {
        let key = keys::user_conv(user, &keys::conv(conversation));
        self.trees
            .records
            .get(key)?
            .map(|v| self.conv_entry(conversation.clone(), &v))
            .transpose()
    }

    async fn entries(&self, user: &UserId) -> Result<Vec<ConvEntry>> {
        let prefix = keys::prefix(kind::USERCONV_ENTRY, user.as_str());
        self.trees
            .records
            .scan_prefix(&prefix)
            .map(|kv| {
                let (k, v) = kv?;
                let conversation = keys::decode_user_conv(&k)
                    .filter(|(owner, _)| owner == user)
                    .map(|(_, c)| c)
                    .ok_or_else(|| {
                        Error::Corrupt(format!(
                            "bad key in {}: {k:?}",
                            kind::name(kind::USERCONV_ENTRY)
                        ))
                    })?;
                self.conv_entry(conversation, &v)
            })
            .collect()
    }

    async fn feed(&self, user: &UserId, after: u64, limit: usize) -> Result<Feed> {
        feed::read(&self.trees.records, user, after, limit)
    }

    async fn set_presence(&self, user: &UserId, online: bool, at: Timestamp) -> Result<()> {
        if online {
            self.online().insert(user.clone());
            return Ok(());
        }
        // `last_seen` first: whoever sees the user offline sees it too.
        self.writer
            .put(keys::last_seen(user), at.to_be_bytes().to_vec())
            .await?;
        self.online().remove(user);
        self.durable(1).await
    }

    async fn presence(&self, user: &UserId) -> Result<Presence> {
        let online = self.online().contains(user);
        let last_seen = self
            .trees
            .records
            .get(keys::last_seen(user))?
            .map(|v| codec::to_u64(kind::name(kind::USER_LASTSEEN), &v))
            .transpose()?;
        Ok(Presence { online, last_seen })
    }

    async fn marks(&self, set: &Marks) -> Result<Vec<Mark>> {
        self.trees
            .records
            .scan_prefix(keys::marks(set))
            .map(|kv| {
                let (k, v) = kv?;
                mark(set, &k, &v)
            })
            .collect()
    }

    async fn mark(&self, set: &Marks, user: &UserId) -> Result<Option<Mark>> {
        let key = keys::mark(set, user);
        let value = self.trees.records.get(&key)?;
        value.map(|v| mark(set, &key, &v)).transpose()
    }

    async fn ping(&self) -> Result<()> {
        self.trees.meta.get(meta::VERSION)?;
        Ok(())
    }

    async fn flush(&self) -> Result<()> {
        self.group_commit.flushed().await
    }

    fn export(&self) -> impl futures_core::Stream<Item = Result<im_engine::store::Record>> + Send {
        self.records()
    }

    async fn member_count(&self, group: &GroupId) -> Result<usize> {
        match self.trees.records.get(keys::room_members(group))? {
            Some(v) => {
                let n = codec::to_u64(kind::name(kind::ROOM_MEMBERS), &v)?;
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            }
            None => Ok(self.members(group).await?.len()),
        }
    }

    async fn members_after(
        &self,
        group: &GroupId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<Member>> {
        self.members_page(group, after, limit)
    }
}

/// A stored mark, decoded.
fn mark(set: &Marks, key: &[u8], value: &[u8]) -> Result<Mark> {
    let what = kind::name(kind::SETUSER_SINCE);
    let user = keys::decode_mark(set, key)
        .ok_or_else(|| Error::Corrupt(format!("bad key in {what}: {key:?}")))?;
    let since = codec::to_u64(what, value)?;
    Ok(Mark { user, since })
}
