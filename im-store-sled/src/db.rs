//! The sled database underneath: its trees, opening it, freeing what it
//! deferred, and waiting for it to close.

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::keys::tree;
use crate::{Durability, SledConfig};

/// The two trees, named as in [`keys`](crate::keys).
#[derive(Debug, Clone)]
pub(crate) struct Trees {
    pub(crate) meta: sled::Tree,
    pub(crate) records: sled::Tree,
}

impl Trees {
    pub(crate) fn open(db: &sled::Db, meta: sled::Tree) -> Result<Self> {
        Ok(Self {
            meta,
            records: db.open_tree(tree::RECORDS)?,
        })
    }
}

/// Keys written per turn of [`reclaim`]: a turn frees at most 8 batches of
/// 64 deferred frees, and an insert defers a few.
const KEYS_PER_TURN: usize = 64;

/// Frees, in proportion to `keys` written, what sled deferred.
///
/// sled replaces a node on every insert and frees the old one later,
/// through epoch-based reclamation (crossbeam-epoch): a little at a time,
/// whenever a thread enters sled. A sled transaction enters sled for every
/// key it touches, and so paid as it went; a batch enters it once, and
/// left a debt that whoever read next paid (reading a page of a feed just
/// after a write of a million events took ten times as long, and freeing
/// on another thread than the writer's was slower still). Each turn here
/// enters sled and runs the frees that no thread can still need.
pub(crate) fn reclaim(keys: usize) {
    for _ in 0..keys.div_ceil(KEYS_PER_TURN) {
        // `sled::pin` is hidden from sled's docs, but public: it is how
        // sled itself enters its epoch, on the collector it frees through.
        sled::pin().flush();
    }
}

/// Whether sled failed to take the database's file lock. sled 0.34.7 says so
/// only in the text of an `Other` I/O error.
fn is_lock_error(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io)
        if io.kind() == std::io::ErrorKind::Other
            && io.to_string().contains("could not acquire lock"))
}

/// Opens sled as `config` says, turning its failures into clear errors.
pub(crate) fn open_db(config: &SledConfig) -> Result<sled::Db> {
    let path = &config.path;
    let every_ms = match config.durability {
        // sled's own flusher also collects old log segments, so it keeps
        // running when we flush ourselves.
        Durability::Flush => 500,
        Durability::Periodic { every_ms } => every_ms.max(1),
    };
    let mut sled_config = sled::Config::new()
        .path(path)
        .flush_every_ms(Some(every_ms));
    if let Some(bytes) = config.cache_capacity {
        sled_config = sled_config.cache_capacity(bytes);
    }
    // sled panics instead of failing on some damaged files.
    match catch_unwind(AssertUnwindSafe(|| sled_config.open())) {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) if is_lock_error(&e) => Err(Error::Locked {
            path: path.clone(),
            source: e,
        }),
        Ok(Err(e)) => Err(Error::Open {
            path: path.clone(),
            source: e,
        }),
        Err(_) => Err(Error::OpenPanicked { path: path.clone() }),
    }
}

/// Waits until nobody holds the lock on `path/db` (sled releases it when
/// its last handle and background thread are gone).
pub(crate) fn wait_released(path: &Path, timeout: Duration) -> Result<()> {
    let file = match fs::File::open(path.join("db")) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::Sled(e.into())),
    };
    let deadline = Instant::now() + timeout;
    loop {
        match file.try_lock() {
            // Dropping `file` releases our lock again.
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::CloseTimeout {
                    path: path.to_owned(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::Sled(e.into())),
        }
    }
}
