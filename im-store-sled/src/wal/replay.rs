//! Replaying the log on open: the writes sled lost in a crash, applied
//! again in order.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::crash;
use crate::error::{Error, Result};
use crate::wal::{APPLIED, DIR, record};

/// What a replay found.
#[derive(Debug)]
pub(crate) struct Replayed {
    /// The segments read: deleted once sled's copy is on stable storage.
    pub(crate) segments: Vec<PathBuf>,
    /// The LSN the next write takes.
    pub(crate) next: u64,
    /// Records applied again (sled had lost them).
    pub(crate) applied: usize,
    /// Whether the last segment ended in a torn record, dropped.
    pub(crate) torn: bool,
}

impl Replayed {
    /// Deletes the segments replayed: call once sled has flushed and its
    /// files are synced.
    pub(crate) fn forget(self) -> io::Result<()> {
        self.segments.iter().try_for_each(fs::remove_file)
    }
}

/// The LSN stored under [`APPLIED`] in `tree` (0: none).
fn applied(tree: &sled::Tree) -> Result<u64> {
    Ok(match tree.get(APPLIED)? {
        Some(v) => u64::from_be_bytes(
            v.as_ref()
                .try_into()
                .map_err(|_| Error::Corrupt(format!("bad log position {v:?}")))?,
        ),
        None => 0,
    })
}

/// The segments in `dir/im-wal`, oldest first.
fn segments(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    match fs::read_dir(dir.join(DIR)) {
        Ok(entries) => {
            for entry in entries {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == "log") {
                    out.push(path);
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // Named by their first LSN, zero-padded: name order is log order.
    out.sort();
    Ok(out)
}

/// Applies again, in order, every logged write that a tree of `db` does not
/// hold yet. Only the last segment may end in a torn record (a crash in the
/// middle of a write): earlier ones were synced whole before the next was
/// begun, so damage there is corruption.
pub(crate) fn replay(db: &sled::Db, dir: &Path) -> Result<Replayed> {
    let mut trees: HashMap<Vec<u8>, (sled::Tree, u64)> = HashMap::new();
    let mut next = 1;
    for name in db.tree_names() {
        let tree = db.open_tree(&name)?;
        let lsn = applied(&tree)?;
        next = next.max(lsn + 1);
        trees.insert(name.to_vec(), (tree, lsn));
    }
    let segments = segments(dir).map_err(sled::Error::from)?;
    let (mut applied, mut torn) = (0, false);
    for (i, path) in segments.iter().enumerate() {
        let bytes = fs::read(path).map_err(sled::Error::from)?;
        let (records, cut) = record::decode_all(&bytes);
        if cut && i + 1 < segments.len() {
            return Err(Error::Corrupt(format!(
                "damaged record in {}, which is not the last log segment",
                path.display()
            )));
        }
        torn |= cut;
        for r in records {
            next = next.max(r.lsn + 1);
            let mut batches: Vec<(&[u8], sled::Batch)> = Vec::new();
            for op in &r.ops {
                let at = match batches.iter().position(|(t, _)| *t == op.tree) {
                    Some(at) => at,
                    None => {
                        batches.push((op.tree, sled::Batch::default()));
                        batches.len() - 1
                    }
                };
                let batch = &mut batches[at].1;
                match op.value {
                    Some(v) => batch.insert(op.key, v),
                    None => batch.remove(op.key),
                }
            }
            let mut lost = false;
            for (name, mut batch) in batches {
                if !trees.contains_key(name) {
                    trees.insert(name.to_vec(), (db.open_tree(name)?, 0));
                }
                let (tree, at) = trees.get_mut(name).expect("just inserted");
                if *at < r.lsn {
                    batch.insert(APPLIED, &r.lsn.to_be_bytes()[..]);
                    tree.apply_batch(batch)?;
                    *at = r.lsn;
                    lost = true;
                }
            }
            applied += usize::from(lost);
            if crash::reached("replay") {
                crash::die("replay");
            }
        }
    }
    Ok(Replayed {
        segments,
        next,
        applied,
        torn,
    })
}

#[cfg(test)]
mod tests {
    use sled::IVec;

    use super::*;
    use crate::wal::{Log, Writes};

    fn put(key: &str, value: &str) -> Writes {
        vec![(key.as_bytes().to_vec(), Some(IVec::from(value.as_bytes())))]
    }

    /// Logs three writes into `dir` through `tree`, synced, and stops.
    async fn log_three(dir: &Path, tree: &sled::Tree) {
        let log = Log::start(dir, 1, true).unwrap();
        log.commit(&[(tree, &put("a", "1"))]).unwrap();
        log.commit(&[(tree, &put("b", "2"))]).unwrap();
        log.commit(&[(tree, &vec![(b"a".to_vec(), None)])]).unwrap();
        log.synced(3).await.unwrap();
        log.stop();
    }

    fn fresh() -> (sled::Db, sled::Tree) {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("records").unwrap();
        (db, tree)
    }

    #[tokio::test]
    async fn a_store_that_lost_the_writes_gets_them_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, tree) = fresh();
        log_three(dir.path(), &tree).await;
        // A sled that kept none of them.
        let (db, _) = fresh();
        let replayed = replay(&db, dir.path()).unwrap();
        assert_eq!(
            (replayed.applied, replayed.next, replayed.torn),
            (3, 4, false)
        );
        let tree = db.open_tree("records").unwrap();
        assert_eq!(tree.get("a").unwrap(), None);
        assert_eq!(tree.get("b").unwrap().as_deref(), Some(&b"2"[..]));
        // Replaying again changes nothing: the tree holds them now.
        let again = replay(&db, dir.path()).unwrap();
        assert_eq!((again.applied, again.next), (0, 4));
        replayed.forget().unwrap();
        assert!(segments(dir.path()).unwrap().is_empty());
    }

    #[tokio::test]
    async fn writes_sled_holds_already_are_not_applied_again() {
        let dir = tempfile::tempdir().unwrap();
        let (db, tree) = fresh();
        log_three(dir.path(), &tree).await;
        // A later, unlogged value of `b`: a replay must not turn it back.
        tree.insert("b", "later").unwrap();
        let replayed = replay(&db, dir.path()).unwrap();
        assert_eq!((replayed.applied, replayed.next), (0, 4));
        assert_eq!(tree.get("b").unwrap().as_deref(), Some(&b"later"[..]));
    }

    #[tokio::test]
    async fn a_torn_last_record_is_dropped_and_damage_before_the_end_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, tree) = fresh();
        log_three(dir.path(), &tree).await;
        let segment = segments(dir.path()).unwrap().pop().unwrap();
        let bytes = fs::read(&segment).unwrap();
        fs::write(&segment, &bytes[..bytes.len() - 3]).unwrap();
        let (db, _) = fresh();
        let replayed = replay(&db, dir.path()).unwrap();
        assert_eq!((replayed.applied, replayed.torn), (2, true));
        let tree = db.open_tree("records").unwrap();
        assert_eq!(tree.get("a").unwrap().as_deref(), Some(&b"1"[..]));

        // The same damage in a segment followed by another is corruption.
        fs::write(dir.path().join(DIR).join(format!("{:020}.log", 99)), b"").unwrap();
        let (db, _) = fresh();
        let err = replay(&db, dir.path()).unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt(what) if what.contains("not the last log segment")),
            "{err:?}"
        );
    }
}
