//! [`SledStore`]: opening, closing, and the [`Store`] trait.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use im_engine::store::{Changes, Outgoing, Sent};
use im_engine::{
    Contact, ConvEntry, ConversationId, Epoch, Feed, Group, GroupId, Member, Message, Notifier,
    Presence, Seq, Store, Timestamp, User, UserId,
};
use serde::de::DeserializeOwned;

use crate::codec::{self, Bounds, Entry};
use crate::db::{Trees, open_db, wait_released};
use crate::error::{Error, Result};
use crate::flush::GroupCommit;
use crate::keys::{self, meta, tree};
use crate::{Durability, FORMAT_VERSION, SledConfig};

/// Writes touching at most this many keys run on the calling thread.
const INLINE_WRITE_KEYS: usize = 512;

/// The engine's data in a sled database: see the [crate docs](crate).
///
/// Dropping it stops its flusher thread and closes the database;
/// [`SledStore::close`] does the same and also waits until the directory
/// can be opened again.
#[derive(Debug)]
pub struct SledStore {
    pub(crate) trees: Arc<Trees>,
    group_commit: GroupCommit,
    durability: Durability,
    notifier: Notifier,
    epoch: Epoch,
    /// Users with a live stream in this process. Presence is process-local:
    /// after a restart everyone is offline, so it is not stored.
    online: Mutex<HashSet<UserId>>,
    path: PathBuf,
}

impl SledStore {
    /// Opens the database at `config.path`, creating it (with a new random
    /// epoch) when the directory holds none. Blocks while sled recovers.
    ///
    /// # Errors
    ///
    /// [`Error::Locked`] when another process has it open,
    /// [`Error::UnsupportedVersion`] for another format version,
    /// [`Error::Corrupt`], [`Error::Open`] or [`Error::OpenPanicked`] for
    /// damaged or foreign files.
    pub fn open(config: SledConfig) -> Result<Self> {
        let path = config.path.clone();
        // sled creates an empty `db` file on open and fills it on its first
        // flush; our first flush holds the format version.
        let had_data = fs::metadata(path.join("db")).is_ok_and(|m| m.len() > 0);
        let db = open_db(&config)?;
        let meta = db.open_tree(tree::META)?;
        let epoch = match meta.get(meta::VERSION)? {
            Some(v) => {
                let found = codec::to_u32(tree::META, &v)?;
                if found != FORMAT_VERSION {
                    return Err(Error::UnsupportedVersion {
                        found,
                        supported: FORMAT_VERSION,
                    });
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
        let trees = Arc::new(Trees::open(&db, meta)?);
        // The flusher thread keeps the one `Db` handle; the trees keep the
        // database open for reads and transactions.
        let group_commit = GroupCommit::start(db)?;
        Ok(Self {
            trees,
            group_commit,
            durability: config.durability,
            notifier: Notifier::new(),
            epoch,
            online: Mutex::default(),
            path,
        })
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
    /// when something still holds the database (a write whose caller gave
    /// up waiting, still running on the blocking pool).
    pub fn close(mut self) -> Result<()> {
        let flushed = self.group_commit.stop();
        let path = self.path.clone();
        drop(self);
        flushed?;
        wait_released(&path, Duration::from_secs(10))
    }

    fn online(&self) -> MutexGuard<'_, HashSet<UserId>> {
        self.online.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes a committed write as durable as the policy promises.
    async fn durable(&self) -> Result<()> {
        match self.durability {
            Durability::Flush => self.group_commit.flushed().await,
            Durability::Periodic { .. } => Ok(()),
        }
    }

    /// Runs a transaction. Small ones run right here: they take a fraction
    /// of a millisecond (plus, at worst, the rest of a flush in progress,
    /// which holds sled's transaction lock), less than a trip through the
    /// blocking pool. Large ones (a send to a big group, a change set with
    /// many events) take tens of milliseconds or more and run on Tokio's
    /// blocking pool, so they do not hold up a worker thread meanwhile.
    async fn write<T, D>(&self, data: &D, keys: usize, f: fn(&Trees, &D) -> Result<T>) -> Result<T>
    where
        T: Send + 'static,
        D: Clone + Send + 'static,
    {
        if keys <= INLINE_WRITE_KEYS {
            return f(&self.trees, data);
        }
        let (trees, data) = (Arc::clone(&self.trees), data.clone());
        tokio::task::spawn_blocking(move || f(&trees, &data))
            .await
            .map_err(Error::Task)?
    }

    fn get<T: DeserializeOwned>(
        &self,
        tree: &sled::Tree,
        name: &str,
        key: &[u8],
    ) -> Result<Option<T>> {
        tree.get(key)?
            .map(|v| codec::from_json(name, &v))
            .transpose()
    }

    fn scan<T: DeserializeOwned>(
        &self,
        tree: &sled::Tree,
        name: &str,
        prefix: &[u8],
    ) -> Result<Vec<T>> {
        tree.scan_prefix(prefix)
            .map(|kv| codec::from_json(name, &kv?.1))
            .collect()
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

    async fn send(&self, send: &Outgoing) -> Result<Sent> {
        let keys = 3 * send.recipients.len();
        let sent = self.write(send, keys, crate::write::send).await?;
        // A duplicate may name a message whose own send is still waiting
        // for its flush: answer it only once that is durable too.
        self.durable().await?;
        if let Sent::New(_) = sent {
            self.notifier.wake(&send.recipients);
        }
        Ok(sent)
    }

    async fn commit(&self, changes: &Changes) -> Result<()> {
        let keys = changes.users.len()
            + changes.contacts.len()
            + changes.groups.len()
            + changes.members.len()
            + changes.entries.len()
            + 2 * changes.events.len();
        self.write(changes, keys, crate::write::commit).await?;
        self.durable().await?;
        self.notifier.wake(changes.events.iter().map(|(u, ..)| u));
        Ok(())
    }

    async fn user(&self, id: &UserId) -> Result<Option<User>> {
        self.get(
            &self.trees.userid_user,
            tree::USERID_USER,
            id.as_str().as_bytes(),
        )
    }

    async fn contact(&self, owner: &UserId, id: &UserId) -> Result<Option<Contact>> {
        self.get(
            &self.trees.ownercontact_contact,
            tree::OWNERCONTACT_CONTACT,
            &keys::owner_contact(owner, id),
        )
    }

    async fn contacts(&self, owner: &UserId) -> Result<Vec<Contact>> {
        self.scan(
            &self.trees.ownercontact_contact,
            tree::OWNERCONTACT_CONTACT,
            &keys::prefix(owner.as_str()),
        )
    }

    async fn group(&self, id: &GroupId) -> Result<Option<Group>> {
        self.get(
            &self.trees.groupid_group,
            tree::GROUPID_GROUP,
            id.as_str().as_bytes(),
        )
    }

    async fn member(&self, group: &GroupId, user: &UserId) -> Result<Option<Member>> {
        self.get(
            &self.trees.groupuser_member,
            tree::GROUPUSER_MEMBER,
            &keys::group_user(group, user),
        )
    }

    async fn members(&self, group: &GroupId) -> Result<Vec<Member>> {
        self.scan(
            &self.trees.groupuser_member,
            tree::GROUPUSER_MEMBER,
            &keys::prefix(group.as_str()),
        )
    }

    async fn last_seq(&self, conversation: &ConversationId) -> Result<Seq> {
        match self.trees.conv_lastseq.get(keys::conv(conversation))? {
            Some(v) => codec::to_u64(tree::CONV_LASTSEQ, &v),
            None => Ok(0),
        }
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
            .convseq_message
            .range(keys::conv_seq(&conv, from)..=keys::conv_seq(&conv, to))
            .map(|kv| codec::from_json(tree::CONVSEQ_MESSAGE, &kv?.1))
            .collect()
    }

    async fn entry(
        &self,
        user: &UserId,
        conversation: &ConversationId,
    ) -> Result<Option<ConvEntry>> {
        let key = keys::user_conv(user, &keys::conv(conversation));
        self.trees
            .userconv_entry
            .get(key)?
            .map(|v| Ok(Entry::decode(&v)?.into_conv_entry(conversation.clone())))
            .transpose()
    }

    async fn entries(&self, user: &UserId) -> Result<Vec<ConvEntry>> {
        let prefix = keys::prefix(user.as_str());
        self.trees
            .userconv_entry
            .scan_prefix(&prefix)
            .map(|kv| {
                let (k, v) = kv?;
                let conversation = keys::decode_user_conv(&k)
                    .filter(|(owner, _)| owner == user)
                    .map(|(_, c)| c)
                    .ok_or_else(|| {
                        Error::Corrupt(format!("bad key in {}: {k:?}", tree::USERCONV_ENTRY))
                    })?;
                Ok(Entry::decode(&v)?.into_conv_entry(conversation))
            })
            .collect()
    }

    /// Reads the bounds, then the positions after `after` up to `limit`,
    /// which must all be there: entries are never rewritten, only trimmed
    /// from the oldest. If a concurrent write trimmed some meanwhile, it
    /// reads again with the new bounds, so the answer is the feed as it was
    /// at one moment.
    async fn feed(&self, user: &UserId, after: u64, limit: usize) -> Result<Feed> {
        let mut previous: Option<Bounds> = None;
        loop {
            let b = match self.trees.user_feedbounds.get(user.as_str().as_bytes())? {
                Some(v) => Bounds::decode(&v)?,
                None => Bounds::default(),
            };
            let start = after.max(b.trimmed).saturating_add(1);
            let want = if start > b.head {
                0
            } else {
                (b.head - start + 1).min(u64::try_from(limit).unwrap_or(u64::MAX))
            };
            let mut entries = Vec::new();
            if want > 0 {
                let range = keys::user_pos(user, start)..=keys::user_pos(user, start + want - 1);
                for kv in self.trees.userpos_event.range(range) {
                    let (k, v) = kv?;
                    let pos = keys::decode_user_pos(&k)
                        .filter(|(owner, _)| owner == user)
                        .map(|(_, pos)| pos)
                        .ok_or_else(|| {
                            Error::Corrupt(format!("bad key in {}: {k:?}", tree::USERPOS_EVENT))
                        })?;
                    entries.push(codec::feed_entry(pos, &v)?);
                }
            }
            if entries.len() as u64 == want {
                return Ok(Feed {
                    trimmed: b.trimmed,
                    head: b.head,
                    entries,
                });
            }
            if previous == Some(b) {
                return Err(Error::Corrupt(format!(
                    "feed of {user} misses events between {} and {}",
                    b.trimmed, b.head
                )));
            }
            previous = Some(b);
        }
    }

    async fn set_presence(&self, user: &UserId, online: bool, at: Timestamp) -> Result<()> {
        if online {
            self.online().insert(user.clone());
            return Ok(());
        }
        // `last_seen` first: whoever sees the user offline sees it too.
        self.trees
            .user_lastseen
            .insert(user.as_str().as_bytes(), &at.to_be_bytes()[..])?;
        self.online().remove(user);
        self.durable().await
    }

    async fn presence(&self, user: &UserId) -> Result<Presence> {
        let online = self.online().contains(user);
        let last_seen = self
            .trees
            .user_lastseen
            .get(user.as_str().as_bytes())?
            .map(|v| codec::to_u64(tree::USER_LASTSEEN, &v))
            .transpose()?;
        Ok(Presence { online, last_seen })
    }

    async fn ping(&self) -> Result<()> {
        self.trees.meta.get(meta::VERSION)?;
        Ok(())
    }

    async fn flush(&self) -> Result<()> {
        self.group_commit.flushed().await
    }
}
