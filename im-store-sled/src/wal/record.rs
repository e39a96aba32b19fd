//! A log record: one atomic write of the store, as the keys it sets and
//! removes in each tree, numbered, length-prefixed and checksummed.
//!
//! On disk: `len: u32 LE`, `crc: u32 LE` (CRC-32 of the payload), then the
//! payload of `len` bytes: `lsn: u64 LE`, `ops: u32 LE`, and per op a tag
//! (`0` insert, `1` remove), the tree name (`u16 LE` length, bytes), the key
//! (`u32 LE` length, bytes) and, for an insert, the value (`u32 LE` length,
//! bytes). Any tree, any keys: a tree a later build adds is logged and
//! replayed like the others.

use sled::IVec;

/// The writes of one tree: each key set to a value or removed (`None`).
pub(crate) type Writes = Vec<(Vec<u8>, Option<IVec>)>;

const HEADER: usize = 8;
const INSERT: u8 = 0;
const REMOVE: u8 = 1;

/// Appends the record of write `lsn` to `out`.
pub(crate) fn encode(out: &mut Vec<u8>, lsn: u64, trees: &[(&sled::Tree, &Writes)]) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    out.extend_from_slice(&lsn.to_le_bytes());
    let ops: usize = trees.iter().map(|(_, w)| w.len()).sum();
    out.extend_from_slice(&len32(ops).to_le_bytes());
    for (tree, writes) in trees {
        let name = tree.name();
        for (key, value) in writes.iter() {
            out.push(if value.is_some() { INSERT } else { REMOVE });
            let name_len = u16::try_from(name.len()).expect("sled tree names are short");
            out.extend_from_slice(&name_len.to_le_bytes());
            out.extend_from_slice(&name);
            put_bytes(out, key);
            if let Some(v) = value {
                put_bytes(out, v);
            }
        }
    }
    let payload = &out[start + HEADER..];
    let len = len32(payload.len());
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).expect("a write under 4 GiB")
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&len32(bytes.len()).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// One op of a decoded record.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Op<'a> {
    pub(crate) tree: &'a [u8],
    pub(crate) key: &'a [u8],
    pub(crate) value: Option<&'a [u8]>,
}

/// A decoded record.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    pub(crate) lsn: u64,
    pub(crate) ops: Vec<Op<'a>>,
}

/// The records of a segment's bytes, in order, and whether they end in a
/// torn or damaged record (whose bytes and everything after are ignored).
pub(crate) fn decode_all(bytes: &[u8]) -> (Vec<Record<'_>>, bool) {
    let mut records = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        match decode(rest) {
            Some((record, used)) => {
                records.push(record);
                rest = &rest[used..];
            }
            None => return (records, true),
        }
    }
    (records, false)
}

/// The record at the start of `bytes` and its size on disk; `None` when it
/// is cut short or its checksum or layout is wrong.
fn decode(bytes: &[u8]) -> Option<(Record<'_>, usize)> {
    let mut r = Reader(bytes);
    let len = r.u32()? as usize;
    let crc = r.u32()?;
    let payload = r.take(len)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let mut p = Reader(payload);
    let lsn = u64::from_le_bytes(p.take(8)?.try_into().ok()?);
    let count = p.u32()?;
    let mut ops = Vec::with_capacity(count.min(1 << 16) as usize);
    for _ in 0..count {
        let tag = *p.take(1)?.first()?;
        let name_len = u16::from_le_bytes(p.take(2)?.try_into().ok()?);
        let tree = p.take(name_len.into())?;
        let key = p.bytes()?;
        let value = match tag {
            INSERT => Some(p.bytes()?),
            REMOVE => None,
            _ => return None,
        };
        ops.push(Op { tree, key, value });
    }
    p.0.is_empty()
        .then_some((Record { lsn, ops }, HEADER + len))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.0.split_at_checked(n)?;
        self.0 = tail;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (sled::Db, Vec<u8>) {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let a = db.open_tree("a").unwrap();
        let b = db.open_tree("bee").unwrap();
        let wa: Writes = vec![
            (b"k1".to_vec(), Some(IVec::from(&b"v1"[..]))),
            (b"k2".to_vec(), None),
        ];
        let wb: Writes = vec![(b"x".to_vec(), Some(IVec::from(&b""[..])))];
        let mut out = Vec::new();
        encode(&mut out, 7, &[(&a, &wa)]);
        encode(&mut out, 8, &[(&a, &wa), (&b, &wb)]);
        (db, out)
    }

    #[test]
    fn records_round_trip_in_order() {
        let (_db, out) = sample();
        let (records, torn) = decode_all(&out);
        assert!(!torn);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].lsn, 7);
        assert_eq!(
            records[1].ops,
            [
                Op {
                    tree: b"a",
                    key: b"k1",
                    value: Some(b"v1")
                },
                Op {
                    tree: b"a",
                    key: b"k2",
                    value: None
                },
                Op {
                    tree: b"bee",
                    key: b"x",
                    value: Some(b"")
                },
            ]
        );
    }

    #[test]
    fn a_torn_or_damaged_tail_is_dropped_whole() {
        let (_db, out) = sample();
        let first = decode(&out).unwrap().1;
        for cut in first + 1..out.len() {
            let (records, torn) = decode_all(&out[..cut]);
            assert_eq!((records.len(), torn), (1, true), "cut at {cut}");
        }
        for flip in first..out.len() {
            let mut bad = out.clone();
            bad[flip] ^= 0x40;
            let (records, torn) = decode_all(&bad);
            assert_eq!((records.len(), torn), (1, true), "flipped byte {flip}");
        }
    }
}
