//! Value encodings, and decoding of raw Redis answers.

use im_engine::{
    Body, ConvEntry, ConversationId, Event, FeedEntry, FireEntry, Message, Seq, UserId,
};
use redis::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result, corrupt};

/// Bodies are checked against the engine's limit before they are stored;
/// reading one back needs no limit.
const ANY_SIZE: usize = usize::MAX;

/// JSON of a record.
pub(crate) fn to_json(v: &impl Serialize) -> Result<String> {
    serde_json::to_string(v).map_err(Error::Encode)
}

/// A record from its JSON.
pub(crate) fn from_json<T: DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| corrupt(format!("{what}: {e}")))
}

/// `read_seq:activity`.
pub(crate) fn entry_value(read_seq: Seq, activity: u64) -> String {
    format!("{read_seq}:{activity}")
}

/// An index entry from its hash field and value, `read_seq:activity` or
/// `read_seq:activity:since` (the seq at which the activity was written).
pub(crate) fn entry(conv: &str, value: &str) -> Result<ConvEntry> {
    let bad = || corrupt(format!("index entry {conv:?} = {value:?}"));
    let (read, rest) = value.split_once(':').ok_or_else(bad)?;
    let activity = rest.split_once(':').map_or(rest, |(a, _)| a);
    Ok(ConvEntry {
        conversation: conv.parse().map_err(|_| bad())?,
        read_seq: read.parse().map_err(|_| bad())?,
        activity: activity.parse().map_err(|_| bad())?,
    })
}

/// Text of a string or number reply.
pub(crate) fn text(v: &Value) -> Result<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).map_err(|_| corrupt("non-UTF-8 text")),
        Value::SimpleString(s) => Ok(s.clone()),
        Value::Int(n) => Ok(n.to_string()),
        Value::VerbatimString { text, .. } => Ok(text.clone()),
        other => Err(corrupt(format!("expected text, got {other:?}"))),
    }
}

/// A number reply (or its text).
pub(crate) fn number(v: &Value) -> Result<u64> {
    match v {
        Value::Int(n) => u64::try_from(*n).map_err(|_| corrupt(format!("negative number {n}"))),
        other => text(other)?
            .parse()
            .map_err(|_| corrupt(format!("expected a number, got {other:?}"))),
    }
}

/// The items of an array reply.
pub(crate) fn array(v: &Value) -> Result<&[Value]> {
    match v {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(&[]),
        other => Err(corrupt(format!("expected an array, got {other:?}"))),
    }
}

/// A stream entry `[id, [field, value, …]]` as its id's number (every
/// stream's ids are `0-<n>`) and fields.
pub(crate) fn stream_entry(v: &Value) -> Result<(u64, Vec<(String, String)>)> {
    let ((_, n), fields) = stream_entry_id(v)?;
    Ok((n, fields))
}

/// A stream entry id's two parts.
type StreamId = (u64, u64);

/// A stream entry with both parts of its id: a feed's position is the
/// second (`0-<pos>`).
fn stream_entry_id(v: &Value) -> Result<(StreamId, Vec<(String, String)>)> {
    let [id, fields] = array(v)? else {
        return Err(corrupt("malformed stream entry"));
    };
    let id = text(id)?;
    let n = id
        .split_once('-')
        .and_then(|(n, s)| Some((n.parse().ok()?, s.parse().ok()?)))
        .ok_or_else(|| corrupt(format!("stream id {id:?}")))?;
    Ok((n, pairs(fields)?))
}

/// A flat `[field, value, …]` array (or a RESP3 map) as pairs.
pub(crate) fn pairs(v: &Value) -> Result<Vec<(String, String)>> {
    if let Value::Map(m) = v {
        return m.iter().map(|(k, v)| Ok((text(k)?, text(v)?))).collect();
    }
    array(v)?
        .chunks(2)
        .map(|kv| match kv {
            [k, v] => Ok((text(k)?, text(v)?)),
            _ => Err(corrupt("odd field list")),
        })
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A message from its log entry's fields.
pub(crate) fn message(
    conversation: &ConversationId,
    seq: Seq,
    fields: &[(String, String)],
) -> Result<Message> {
    let need = |name| {
        field(fields, name)
            .ok_or_else(|| corrupt(format!("message {conversation}/{seq}: no {name}")))
    };
    let bad = |what| corrupt(format!("message {conversation}/{seq}: bad {what}"));
    Ok(Message {
        conversation: conversation.clone(),
        seq,
        from: UserId::new(need("f")?).map_err(|_| bad("sender"))?,
        ts: need("t")?.parse().map_err(|_| bad("time"))?,
        body: Some(Body::new(need("b")?, ANY_SIZE).map_err(|_| bad("body"))?),
        client_id: field(fields, "c").map(str::to_owned),
        reply_to: field(fields, "r")
            .map(|r| r.parse().map_err(|_| bad("reply_to")))
            .transpose()?,
        edited_at: None,
        deleted_at: None,
        reactions: Default::default(),
    })
}

/// A feed entry from its stream entry.
pub(crate) fn feed_entry(v: &Value) -> Result<FeedEntry> {
    let ((_, pos), fields) = stream_entry_id(v)?;
    let bad = |what| corrupt(format!("feed entry {pos}: bad {what}"));
    let ts = field(&fields, "t")
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| bad("time"))?;
    let event: Event = from_json(
        "feed event",
        field(&fields, "e").ok_or_else(|| bad("event"))?,
    )?;
    Ok(FeedEntry { pos, ts, event })
}

/// A firehose entry as the scripts write it: `t` time, `u` user (empty for
/// a shared event), `e` event.
pub(crate) fn fire_entry(v: &Value) -> Result<FireEntry> {
    let (pos, fields) = stream_entry(v)?;
    let bad = |what| corrupt(format!("firehose entry {pos}: bad {what}"));
    let ts = field(&fields, "t")
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| bad("time"))?;
    let user = match field(&fields, "u").ok_or_else(|| bad("user"))? {
        "" => None,
        u => Some(UserId::new(u).map_err(|_| bad("user"))?),
    };
    let event: Event = from_json(
        "firehose event",
        field(&fields, "e").ok_or_else(|| bad("event"))?,
    )?;
    Ok(FireEntry {
        pos,
        ts,
        user,
        event,
    })
}

/// A list of users as the scripts take it: `u1,u2,…`.
pub(crate) fn user_list(users: &[UserId]) -> String {
    let users: Vec<&str> = users.iter().map(UserId::as_str).collect();
    users.join(",")
}

/// A pending fan-out record: a message or a membership change, and who
/// must hear of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pending {
    /// The record as stored (to remove it once done).
    pub(crate) raw: String,
    /// A message's seq; a membership change's conversation `last_seq`.
    pub(crate) seq: Seq,
    /// 0 for a message; a membership change's number, from 1.
    pub(crate) mseq: u64,
    pub(crate) ts: u64,
    pub(crate) keep: u64,
    pub(crate) min_ts: u64,
    /// A message's sender; `+user` or `-user` for a membership change.
    pub(crate) who: String,
    /// A membership change's feed event (empty for a message).
    pub(crate) event: String,
    pub(crate) recipients: Vec<UserId>,
}

/// Parses `seq|ts|keep|min_ts|from|u1,u2,…` (a message) or
/// `seq|m<mseq>|ts|keep|min_ts|±user|event|u1,u2,…` (a membership change).
pub(crate) fn pending(raw: &str) -> Result<Pending> {
    let bad = || corrupt(format!("pending fan-out {raw:?}"));
    let member = raw.split('|').nth(1).is_some_and(|f| f.starts_with('m'));
    let mut parts = raw.splitn(if member { 8 } else { 6 }, '|');
    let seq: u64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let mseq: u64 = if member {
        parts
            .next()
            .and_then(|p| p.strip_prefix('m')?.parse().ok())
            .filter(|&m| m > 0)
            .ok_or_else(bad)?
    } else {
        0
    };
    let mut num = || -> Result<u64> { parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad) };
    let (ts, keep, min_ts) = (num()?, num()?, num()?);
    let who = parts.next().ok_or_else(bad)?.to_owned();
    let event = if member {
        parts.next().ok_or_else(bad)?.to_owned()
    } else {
        String::new()
    };
    let recipients = parts
        .next()
        .ok_or_else(bad)?
        .split(',')
        .filter(|u| !u.is_empty())
        .map(|u| UserId::new(u).map_err(|_| bad()))
        .collect::<Result<_>>()?;
    Ok(Pending {
        raw: raw.to_owned(),
        seq,
        mseq,
        ts,
        keep,
        min_ts,
        who,
        event,
        recipients,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_records_round_trip() {
        let users = [UserId::new("a").unwrap(), UserId::new("b.c").unwrap()];
        let p = pending(&format!("7|5|9|0|a|{}", user_list(&users))).unwrap();
        assert_eq!(
            (p.seq, p.mseq, p.ts, p.keep, p.min_ts, p.who.as_str()),
            (7, 0, 5, 9, 0, "a")
        );
        assert_eq!((p.event.as_str(), &p.recipients[..]), ("", &users[..]));
        let event = r#"{"kind":"member","group":"g","user":"b.c","change":"left"}"#;
        let raw = format!("7|m{:020}|5|9|0|-b.c|{event}|a,b.c", 3);
        let p = pending(&raw).unwrap();
        assert_eq!(
            (p.seq, p.mseq, p.ts, p.who.as_str(), p.event.as_str()),
            (7, 3, 5, "-b.c", event)
        );
        assert_eq!(p.recipients, users);
        assert!(pending("7|x").is_err());
        assert!(pending("7|m0|5|9|0|-a|{}|a").is_err());
    }

    #[test]
    fn entries_decode_or_fail_loudly() {
        let e = entry("dm:a:b", &entry_value(3, 99)).unwrap();
        assert_eq!((e.read_seq, e.activity), (3, 99));
        assert!(entry("dm:a:b", "3").is_err());
        assert!(entry("nope", "1:2").is_err());
    }
}
