//! The Lua scripts: each runs atomically on one Redis (one slot of a
//! cluster). They are loaded once per server and called by SHA
//! ([`redis::Script`] sends `EVALSHA` and loads the script on `NOSCRIPT`).
//!
//! Every stream numbers its entries itself: a log's, a firehose
//! partition's and a feed's ids are `0-<n>`, given by `XADD … 0-*` (one past
//! the last id the stream ever gave, deleted or trimmed or not), so an
//! append is one call and answers the entry's seq or position; the last
//! one given is the stream's `last-generated-id` (`stream_head`). No id is
//! ever copied from another stream. Lua numbers are doubles: exact for integers below 2^53, which
//! seqs, positions and millisecond times stay under; the caller clamps
//! "keep everything" to 2^53.

use std::sync::LazyLock;

use redis::Script;

/// Helpers shared by the writing scripts.
macro_rules! prelude {
    () => {
        r#"
-- The number of a stream id `0-<n>`.
local function id_pos(id) return tonumber(string.sub(id, 3)) end

-- The last position a stream gave (0 for none): its `last-generated-id`.
local function stream_head(key)
  if redis.call('EXISTS', key) == 0 then return 0 end
  local info = redis.call('XINFO', 'STREAM', key)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then return id_pos(info[i + 1]) end
  end
  return 0
end

-- "Keep everything", as the caller clamps it.
local LUA_MAX = 9007199254740992

-- Drops from a feed's front the events older than `min_ts`. Reads the
-- oldest alone first: in the common case it is recent and nothing goes.
local function age_trim(feed, min_ts)
  local first = redis.call('XRANGE', feed, '-', '+', 'COUNT', 1)
  if #first == 0 or tonumber(first[1][2][2]) >= min_ts then return end
  local cut = first[1][1]
  while true do
    local batch = redis.call('XRANGE', feed, '(' .. cut, '+', 'COUNT', 64)
    local more = #batch > 0
    for _, e in ipairs(batch) do
      if tonumber(e[2][2]) < min_ts then
        cut = e[1]
      else
        more = false
        break
      end
    end
    if not more then break end
  end
  local pos = tonumber(string.match(cut, '^0%-(%d+)$'))
  redis.call('XTRIM', feed, 'MINID', string.format('0-%d', pos + 1))
end

-- Appends an event to a feed, then drops from its front while it holds more
-- than `keep` events or its oldest is older than `min_ts` (0: no age limit).
-- A feed's ids are `0-<pos>`: `0-*` makes the stream number them itself,
-- one past the last it ever gave (trimmed or not), so the append is one
-- call; the count limit is the same call's exact MAXLEN.
local function feed_append(feed, ts, event, keep, min_ts)
  if keep < LUA_MAX then
    redis.call('XADD', feed, 'MAXLEN', '=', keep, '0-*', 't', ts, 'e', event)
  else
    redis.call('XADD', feed, '0-*', 't', ts, 'e', event)
  end
  if min_ts > 0 then age_trim(feed, min_ts) end
end

-- An index entry's value: `read_seq:activity:since`, `since` the seq at
-- which `activity` was written (format 3 wrote `read_seq:activity`: since
-- 0). A group's conversation keeps the activity of its newest send to all
-- its members (`P{c:group:G}:activity`, fields `seq`, `ts`); a member's
-- entry takes that activity when it is newer than its own (`seq > since`).
local function parse_entry(v)
  local r, a, since = string.match(v, '^(%d+):(%d+):?(%d*)$')
  return tonumber(r), a, tonumber(since) or 0
end

local function entry_value(read, activity, since)
  return string.format('%d:', read) .. activity .. string.format(':%d', since)
end

-- A user's own entry of a conversation from its two fields, or nil: the
-- entry (`base`, above) and `act`, field `@<conv>`, `activity:seq`, where a
-- send to a direct conversation on one Redis writes the recipient's
-- activity without reading the entry. `act` counts when its seq is newer
-- than the entry's `since`; alone it is an entry that has read nothing.
local function own_entry(base, act)
  if not base and not act then return nil end
  local r, a, since = 0, '0', 0
  if base then r, a, since = parse_entry(base) end
  if act then
    local aa, aseq = string.match(act, '^(%d+):(%d+)$')
    if aseq and tonumber(aseq) > since then a, since = aa, tonumber(aseq) end
  end
  return r, a, since
end

local function get_entry(entries, conv)
  local v = redis.call('HMGET', entries, conv, '@' .. conv)
  return own_entry(v[1], v[2])
end

-- A send's effect on one recipient on one Redis: its index entry (activity,
-- and the sender's own read cursor) and `event`, the reference, in its
-- feed. `seq` is the conversation's `last_seq`, which no read cursor
-- passes, so the sender's cursor becomes `seq` without reading it. (On a
-- cluster the fan-out does this, `fan_user`.)
local function apply_message(entries, feed, conv, seq, event, ts, is_sender, keep, min_ts)
  local read = seq
  if not is_sender then read = get_entry(entries, conv) or 0 end
  redis.call('HSET', entries, conv, entry_value(read, ts, seq))
  feed_append(feed, ts, event, keep, min_ts)
end

-- A group's (or room's) members are a hash, user -> Member JSON, and an
-- ordered index of their ids, a sorted set of score 0 (pages by id are
-- `ZRANGE … BYLEX`): every script that adds or removes a member changes
-- both, with these.
local function member_put(members, ids, user, value)
  redis.call('HSET', members, user, value)
  redis.call('ZADD', ids, 0, user)
end

local function member_remove(members, ids, user)
  redis.call('HDEL', members, user)
  redis.call('ZREM', ids, user)
end

-- Appends an event to a firehose partition (user: '' for a shared event).
local function fire_append(fire, ts, user, event)
  redis.call('XADD', fire, '0-*', 't', ts, 'u', user, 'e', event)
end

-- A fan-out watermark (field `conv` of hash `key`): the last position
-- applied, `seq` or `seq:mseq`, as two numbers.
local function read_mark(key, conv)
  local mark = redis.call('HGET', key, conv) or '0'
  local ws, wm = string.match(mark, '^(%d+):?(%d*)$')
  return tonumber(ws), tonumber(wm) or 0
end

local function write_mark(key, conv, ws, wm)
  local w = string.format('%d', ws)
  if wm > 0 then w = w .. string.format(':%d', wm) end
  redis.call('HSET', key, conv, w)
end

-- The feed event of message `seq` of `conv`, exactly as serde encodes
-- `Event::Message` (tests/events.rs checks every kind the scripts write).
local function message_event(conv, seq)
  return string.format('{"kind":"message","conversation":"%s","seq":%d}', conv, seq)
end

-- A user's key, as `Keys` names it (only the scripts that touch keys they
-- were not given use this: on a single Redis a group's members are read
-- inside the script; on a cluster `FANOUT_NODE` serves one node's users).
local function ukey(prefix, user, what) return prefix .. '{u:' .. user .. '}:' .. what end

-- Before `user` joins or leaves group conversation `conv` (members hash
-- `members`) by a way that does not write its entry: fixes the entry at
-- the activity it has now, as its own, so the change of membership does
-- not change it; a member arriving without an entry clears the group's
-- `clean` (single Redis only).
local function fix_entry(prefix, members, user, conv, joins)
  local entries, act = ukey(prefix, user, 'entries'), prefix .. '{c:' .. conv .. '}:activity'
  local r, activity, since = get_entry(entries, conv)
  local a = redis.call('HMGET', act, 'seq', 'ts')
  local aseq = tonumber(a[1] or '0')
  if r then
    if aseq > since and redis.call('HEXISTS', members, user) == 1 then activity = a[2] end
    redis.call('HSET', entries, conv, entry_value(r, activity, aseq))
  elseif joins then
    redis.call('HSET', act, 'clean', '0')
  end
end

-- The answer to a repeated client id: the original's seq and fields.
local function duplicate(client_ids, log, from, cid)
  if cid == '' then return nil end
  local old = redis.call('HGET', client_ids, from .. ':' .. cid)
  if not old then return nil end
  local e = redis.call('XRANGE', log, '0-' .. old, '0-' .. old)
  if e[1] then return {0, tonumber(old), e[1][2]} end
  return {0, tonumber(old), {}}
end

-- Appends a message to its log, which numbers it; records its client id.
-- `reply` is the seq it answers, or ''. Answers the seq.
local function append_message(client_ids, log, from, ts, body, cid, reply)
  local id
  if cid == '' and reply == '' then
    id = redis.call('XADD', log, '0-*', 'f', from, 't', ts, 'b', body)
  else
    local fields = {'f', from, 't', ts, 'b', body}
    if cid ~= '' then
      table.insert(fields, 'c')
      table.insert(fields, cid)
    end
    if reply ~= '' then
      table.insert(fields, 'r')
      table.insert(fields, reply)
    end
    id = redis.call('XADD', log, '0-*', unpack(fields))
  end
  local seq = id_pos(id)
  if cid ~= '' then redis.call('HSET', client_ids, from .. ':' .. cid, seq) end
  return seq
end

-- The answer to a repeated client id, when the original was changed since:
-- its record in `changed`.
local function duplicate_changed(dup, changed)
  if dup and dup[3] and #dup[3] == 0 then
    local c = redis.call('HGET', changed, tostring(dup[2]))
    if c then return {0, dup[2], {}, c} end
  end
  return dup
end
"#
    };
}

/// A whole send on a single Redis.
///
/// KEYS: client ids, log, changed messages, the direct conversation's
/// blocks, the firehose, then (entries, feed) per recipient.
/// ARGV: from, ts, body, client id (`''` for none), conversation, keep,
/// min_ts, reply_to (`''` for none), then the recipients. The caller
/// notifies other nodes (`outbox`). In a direct conversation the recipient's activity
/// goes into its `@<conv>` field (see `own_entry`), so its entry is not
/// read. Answers `{1, seq}`, `{0, seq, fields, changed}`
/// for a repeated client id (`fields` of its log entry, or `changed`, its
/// record once changed), or `{3}` when one of the two blocks the other.
pub(crate) static SEND_ALL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local from, ts, body, cid, conv = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local keep, min_ts = tonumber(ARGV[6]), tonumber(ARGV[7])
if redis.call('EXISTS', KEYS[4]) == 1 then return {3} end
local dup = duplicate_changed(duplicate(KEYS[1], KEYS[2], from, cid), KEYS[3])
if dup then return dup end
local seq = append_message(KEYS[1], KEYS[2], from, ts, body, cid, ARGV[8])
local event = message_event(conv, seq)
fire_append(KEYS[5], ts, '', event)
local dm = string.sub(conv, 1, 3) == 'dm:'
for i = 1, (#KEYS - 5) / 2 do
  local k = 2 * i + 4
  if dm and ARGV[8 + i] ~= from then
    redis.call('HSET', KEYS[k], '@' .. conv, ts .. string.format(':%d', seq))
    feed_append(KEYS[k + 1], ts, event, keep, min_ts)
  else
    apply_message(KEYS[k], KEYS[k + 1], conv, seq, event, ts, ARGV[8 + i] == from, keep, min_ts)
  end
end
return {1, seq}
"#
    ))
});

/// A whole send to a group on a single Redis: the members it goes to are
/// read here, in the step that commits it, so a join or leave is wholly
/// before or after it.
///
/// About one call per member: when every member holds its index entry
/// (`clean` in the conversation's activity hash, which whatever adds a
/// member without one or removes a member's entry clears), the members'
/// entries are not written: the send moves the conversation's activity
/// and the sender's cursor, and appends to each member's feed. Otherwise
/// it writes every member's entry once, as a send to listed users does,
/// and marks the group clean.
///
/// KEYS: client ids, log, members, changed messages, the firehose, the
/// conversation's activity. ARGV:
/// from, ts, body, client id (`''` for none), conversation, keep, min_ts,
/// the key prefix, reply_to (`''` for none). The caller notifies other
/// nodes (`outbox`). Answers `{1, seq, members}`, `{0, seq, fields,
/// changed}` for a repeated client id, or `{2}` when the sender is no
/// member.
pub(crate) static SEND_GROUP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local from, ts, body, cid, conv = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local keep, min_ts, prefix = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
if redis.call('HEXISTS', KEYS[3], from) == 0 then return {2} end
local dup = duplicate_changed(duplicate(KEYS[1], KEYS[2], from, cid), KEYS[4])
if dup then return dup end
local seq = append_message(KEYS[1], KEYS[2], from, ts, body, cid, ARGV[9])
local event = message_event(conv, seq)
fire_append(KEYS[5], ts, '', event)
local members = redis.call('HKEYS', KEYS[3])
if redis.call('HGET', KEYS[6], 'clean') == '1' then
  for _, u in ipairs(members) do feed_append(ukey(prefix, u, 'feed'), ts, event, keep, min_ts) end
  redis.call('HSET', ukey(prefix, from, 'entries'), conv, entry_value(seq, ts, seq))
  redis.call('HSET', KEYS[6], 'seq', seq, 'ts', ts)
else
  for _, u in ipairs(members) do
    apply_message(ukey(prefix, u, 'entries'), ukey(prefix, u, 'feed'), conv, seq, event, ts,
      u == from, keep, min_ts)
  end
  redis.call('HSET', KEYS[6], 'seq', seq, 'ts', ts, 'clean', '1')
end
return {1, seq, members}
"#
    ))
});

/// A send to a room on a single Redis: the sender's membership checked,
/// the message stored once and in the firehose, no feed written. (On a
/// cluster a room's send is [`SEND_CONV`]'s, so that its firehose entry
/// goes through the fan-out.)
///
/// KEYS: client ids, log, members, changed messages, the firehose. ARGV:
/// from, ts, body, client id (`''` for none), reply_to (`''` for none),
/// conversation.
/// Answers `{1, seq}`, `{0, seq, fields, changed}` for a repeated client
/// id, or `{2}` when the sender is no member.
pub(crate) static SEND_ROOM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local from, ts, body, cid = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('HEXISTS', KEYS[3], from) == 0 then return {2} end
local dup = duplicate_changed(duplicate(KEYS[1], KEYS[2], from, cid), KEYS[4])
if dup then return dup end
local seq = append_message(KEYS[1], KEYS[2], from, ts, body, cid, ARGV[5])
fire_append(KEYS[5], ts, '', message_event(ARGV[6], seq))
return {1, seq}
"#
    ))
});

/// A room's join (`op` `+`) or leave (`-`): the member set only.
///
/// The member hash is the group namespace's: on a single Redis the
/// user's entry of `group:<id>`, if any, is fixed first (`fix_entry`).
///
/// KEYS: members, bans, member ids. ARGV: op, user, member JSON, max
/// members, the group's conversation, key prefix (`''` on a cluster). Answers
/// `{1}`, `{0}` (nothing to do), `{2}` (full) or `{3}` (banned).
pub(crate) static MEMBER_ROOM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local is_member = redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1
local joins = ARGV[1] == '+'
if joins then
  if is_member then return {0} end
  if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return {3} end
  if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then return {2} end
elseif not is_member then
  return {0}
end
if ARGV[6] ~= '' then fix_entry(ARGV[6], KEYS[1], ARGV[2], ARGV[5], joins) end
if joins then
  member_put(KEYS[1], KEYS[3], ARGV[2], ARGV[3])
else
  member_remove(KEYS[1], KEYS[3], ARGV[2])
end
return {1}
"#
    ))
});

/// A join (`op` `+`) or leave (`-`) on a single Redis, whole.
///
/// KEYS: members, the conversation's log, bans, the firehose, member ids.
/// ARGV: op, user,
/// member JSON, max members, at, event JSON, keep, min_ts, conversation,
/// key prefix, channel (`''`: no publish), the payload's first line.
/// Answers `{1, members told}`, `{0}` (nothing to do), `{2}` (the group is
/// full) or `{3}` (the user is banned).
pub(crate) static MEMBER_ALL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local op, user, at, event = ARGV[1], ARGV[2], ARGV[5], ARGV[6]
local keep, min_ts, conv, prefix = tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9], ARGV[10]
local is_member = redis.call('HEXISTS', KEYS[1], user) == 1
if op == '+' then
  if is_member then return {0} end
  if redis.call('HEXISTS', KEYS[3], user) == 1 then return {3} end
  if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then return {2} end
  member_put(KEYS[1], KEYS[5], user, ARGV[3])
  local last = stream_head(KEYS[2])
  redis.call('HSET', ukey(prefix, user, 'entries'), conv, entry_value(last, at, last))
elseif not is_member then
  return {0}
end
-- Every member hears of it, the one who joined or left included.
fire_append(KEYS[4], at, '', event)
local members = redis.call('HKEYS', KEYS[1])
for _, u in ipairs(members) do
  feed_append(ukey(prefix, u, 'feed'), at, event, keep, min_ts)
end
if op == '-' then
  member_remove(KEYS[1], KEYS[5], user)
  redis.call('HDEL', ukey(prefix, user, 'entries'), conv)
end
if ARGV[11] ~= '' then
  redis.call('PUBLISH', ARGV[11], ARGV[12] .. '\n' .. table.concat(members, '\n'))
end
return {1, members}
"#
    ))
});

/// The conversation-slot half of a send on a cluster: the commit point.
///
/// KEYS: client ids, log, pending, changed messages, and for a group its
/// members, for a direct conversation its blocks. ARGV: from,
/// ts, body, client id, the pending record's tail up to its recipients
/// `ts|keep|min_ts|from|`, the recipients `u1,u2,…` (`''` for a group,
/// whose are read here instead, in the step that commits), reply_to (`''`
/// for none), `g` for a group, `r` for a room (its members are checked,
/// no one's feed is written: the pending record only feeds the firehose)
/// or `u` for listed users. Answers `{1, seq, first pending records, recipients}`,
/// `{0, seq, fields, changed}` for a repeated client id, `{2}` when the
/// sender is no member of the group, or `{3}` when one of a direct
/// conversation's users blocks the other.
pub(crate) static SEND_CONV: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local from, ts, body, cid = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local recipients = ARGV[6]
local group = ARGV[8] == 'g'
if group or ARGV[8] == 'r' then
  if redis.call('HEXISTS', KEYS[5], from) == 0 then return {2} end
elseif redis.call('EXISTS', KEYS[5]) == 1 then
  return {3}
end
local dup = duplicate_changed(duplicate(KEYS[1], KEYS[2], from, cid), KEYS[4])
if dup then return dup end
if group then recipients = table.concat(redis.call('HKEYS', KEYS[5]), ',') end
local seq = append_message(KEYS[1], KEYS[2], from, ts, body, cid, ARGV[7])
redis.call('ZADD', KEYS[3], seq, string.format('%d|', seq) .. ARGV[5] .. recipients)
return {1, seq, redis.call('ZRANGE', KEYS[3], 0, 63), recipients}
"#
    ))
});

/// The conversation-slot half of a join (`op` `+`) or leave (`-`) on a
/// cluster: its commit point. The change goes into the conversation's
/// pending records, ordered after the messages committed before it
/// (score `last_seq`, and `m<mseq>` sorts after a message's digits), so the
/// fan-out applies it to every member in the same order as the messages
/// around it.
///
/// KEYS: members, log, pending, membership counter, bans, member ids. ARGV:
/// op, user, member JSON, max members, the record's `ts|keep|min_ts|` part,
/// event JSON. Answers `{1, first pending records}`, `{0}` (nothing to
/// do), `{2}` (full) or `{3}` (banned).
pub(crate) static MEMBER_CONV: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local op, user = ARGV[1], ARGV[2]
local is_member = redis.call('HEXISTS', KEYS[1], user) == 1
if op == '+' then
  if is_member then return {0} end
  if redis.call('HEXISTS', KEYS[5], user) == 1 then return {3} end
  if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then return {2} end
  member_put(KEYS[1], KEYS[6], user, ARGV[3])
elseif not is_member then
  return {0}
end
-- Every member hears of it, the one who joined or left included.
local members = redis.call('HKEYS', KEYS[1])
if op == '-' then member_remove(KEYS[1], KEYS[6], user) end
local last = stream_head(KEYS[2])
local m = redis.call('INCR', KEYS[4])
local record = string.format('%d|m%020d|', last, m) .. ARGV[5] .. op .. user .. '|' .. ARGV[6]
  .. '|' .. table.concat(members, ',')
redis.call('ZADD', KEYS[3], last, record)
return {1, redis.call('ZRANGE', KEYS[3], 0, 63)}
"#
    ))
});

/// Applies pending records of one conversation to one recipient, in
/// order, each at most once, and answers how many it applied. A record's
/// position is `(seq, mseq)`: a message's is `(seq, 0)`, a membership
/// change's `(last_seq, mseq)`, after the message it follows. The user's
/// watermark (`P{u:U}:fanned`, field: the conversation) holds the last
/// position applied, `seq` or `seq:mseq`.
///
/// `recs` are tables `{seq, mseq, ts, keep, min_ts, who, event}`, ascending.
/// For a message `who` is the sender and `event` its feed event; for a
/// membership change `who` is `+user` (joined) or `-user` (left), for a
/// change to a message `*`. The user's entry is written once, as the
/// records leave it.
///
/// The watermark is read before anything is written.
macro_rules! fan_user {
    () => {
        r#"
local function fan_user(entries, feed, fanned, conv, user, recs)
  local ws, wm = read_mark(fanned, conv)
  local applied = 0
  -- The entry as the records leave it: `read` is nil until read (on the
  -- first message), false once the user left.
  local read, activity, since, dirty = nil, nil, nil, false
  for _, r in ipairs(recs) do
    if r.seq > ws or (r.seq == ws and r.mseq > wm) then
      if r.mseq == 0 then
        -- The activity, and the sender's cursor moved to its own message
        -- unless already past it (the fan-out runs after the commit).
        if read == nil then read = get_entry(entries, conv) or 0 end
        if read == false then read = 0 end
        if r.who == user and r.seq > read then read = r.seq end
        activity, since, dirty = r.ts, r.seq, true
      else
        local op, changed = string.sub(r.who, 1, 1), string.sub(r.who, 2)
        if op ~= '*' and changed == user then
          if op == '+' then
            read, activity, since = r.seq, r.ts, r.seq
          else
            read = false
          end
          dirty = true
        end
      end
      feed_append(feed, r.ts, r.event, r.keep, r.min_ts)
      ws, wm = r.seq, r.mseq
      applied = applied + 1
    end
  end
  if dirty then
    if read == false then
      redis.call('HDEL', entries, conv)
    else
      redis.call('HSET', entries, conv, entry_value(read, activity, since))
    end
  end
  if applied > 0 then write_mark(fanned, conv, ws, wm) end
  return applied
end

-- The records of ARGV from `first` on, 7 fields each: seq, mseq, ts, keep,
-- min_ts, who, event (`''` for a message: its event is made here).
local function parse_records(conv, first, count)
  local recs = {}
  for r = 1, count do
    local i = first + (r - 1) * 7
    local rec = {seq = tonumber(ARGV[i]), mseq = tonumber(ARGV[i + 1]), ts = ARGV[i + 2],
      keep = tonumber(ARGV[i + 3]), min_ts = tonumber(ARGV[i + 4]), who = ARGV[i + 5],
      event = ARGV[i + 6]}
    if rec.mseq == 0 then rec.event = message_event(conv, rec.seq) end
    recs[r] = rec
  end
  return recs
end
"#
    };
}

/// The user-slot half of a send, join or leave on a cluster: applies the
/// pending records of one conversation to one recipient (`fan_user`).
///
/// KEYS: entries, feed, fanned. ARGV: conversation, user, then per record,
/// ascending: seq, mseq, ts, keep, min_ts, who, event (`''` for a message).
/// Answers how many were applied.
pub(crate) static FANOUT_USER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        fan_user!(),
        r#"
local conv, user = ARGV[1], ARGV[2]
return fan_user(KEYS[1], KEYS[2], KEYS[3], conv, user, parse_records(conv, 3, (#ARGV - 2) / 7))
"#
    ))
});

/// [`FANOUT_USER`] for several recipients whose slots one cluster node
/// serves, in one call: the records are passed once, and each user's keys
/// are made from the prefix (they are not declared, which a script without
/// flags may do on a cluster as long as they are this node's).
///
/// Each user's first command is an `EXISTS` of all three of its keys, which
/// Redis refuses (the script stops there) unless the node serves them all
/// right now: when the user's slot is another node's, and while the slot
/// moves (a key already gone, or not yet come). A user checked that way
/// cannot be cut off part way, since no slot moves while a script runs. So
/// the users before a refused one are applied whole, the rest not at all,
/// and the caller applies them one by one instead (the watermarks skip
/// what was applied).
///
/// KEYS: the first user's watermark (routes the call). ARGV: conversation,
/// key prefix, record count, the records as `FANOUT_USER` takes them, then
/// per user: its id and which records are its (`''`: all; else their
/// 1-based indexes, comma-separated). Answers how many were applied to each
/// user, in order.
pub(crate) static FANOUT_NODE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        fan_user!(),
        r#"
local conv, prefix, count = ARGV[1], ARGV[2], tonumber(ARGV[3])
local recs = parse_records(conv, 4, count)
local out = {}
for j = 4 + count * 7, #ARGV, 2 do
  local user, pick = ARGV[j], ARGV[j + 1]
  local mine = recs
  if pick ~= '' then
    mine = {}
    for n in string.gmatch(pick, '%d+') do mine[#mine + 1] = recs[tonumber(n)] end
  end
  local entries, feed, fanned = ukey(prefix, user, 'entries'), ukey(prefix, user, 'feed'),
    ukey(prefix, user, 'fanned')
  redis.call('EXISTS', fanned, entries, feed)
  out[#out + 1] = fan_user(entries, feed, fanned, conv, user, mine)
end
return out
"#
    ))
});

/// Checks that the message `seq` is as the caller read it (`expected`: its
/// record in `changed`, or `''` for the original in the log), and stores
/// `new` as its record, out of the log. Answers nil when it stored, or the
/// code to answer: 3 (changed since: read again), 4 (no such message).
macro_rules! swap_message {
    () => {
        r#"
local function swap_message(changed, log, seq, expected, new)
  local cur = redis.call('HGET', changed, seq) or ''
  if cur ~= expected then return 3 end
  if cur == '' and #redis.call('XRANGE', log, '0-' .. seq, '0-' .. seq) == 0 then return 4 end
  redis.call('HSET', changed, seq, new)
  redis.call('XDEL', log, '0-' .. seq)
  return nil
end
"#
    };
}

/// A change to a message on a single Redis, whole: the message swapped for
/// its new record and the event in every recipient's feed.
///
/// KEYS: changed messages, log, the firehose, then the members for a
/// group, or the feed of each recipient. ARGV: seq, expected record (`''`: the log's),
/// new record, event, at, keep, min_ts, key prefix, the reacting user
/// (`''`: none), channel (`''`: no publish), the payload's first line,
/// `group`, `room` (members checked, no feed written) or `users`, then
/// the recipients (users). Answers `{1,
/// recipients}`, `{2}` (the reacting user is no member), `{3}` (changed
/// since read) or `{4}` (no such message).
pub(crate) static UPDATE_ALL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        swap_message!(),
        r#"
local seq, event, at = ARGV[1], ARGV[4], ARGV[5]
local keep, min_ts, prefix, reactor = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8], ARGV[9]
local group = ARGV[12] == 'group'
local members = group or ARGV[12] == 'room'
if members and reactor ~= '' and redis.call('HEXISTS', KEYS[4], reactor) == 0 then return {2} end
local refused = swap_message(KEYS[1], KEYS[2], seq, ARGV[2], ARGV[3])
if refused then return {refused} end
fire_append(KEYS[3], at, '', event)
local recipients = {}
if group then
  recipients = redis.call('HKEYS', KEYS[4])
  for _, u in ipairs(recipients) do
    feed_append(ukey(prefix, u, 'feed'), at, event, keep, min_ts)
  end
else
  for i = 13, #ARGV do
    table.insert(recipients, ARGV[i])
    feed_append(KEYS[i - 9], at, event, keep, min_ts)
  end
end
if ARGV[10] ~= '' then
  redis.call('PUBLISH', ARGV[10], ARGV[11] .. '\n' .. table.concat(recipients, '\n'))
end
return {1, recipients}
"#
    ))
});

/// The conversation-slot half of a change to a message on a cluster: its
/// commit point. The message is swapped for its new record, and the event
/// goes into the conversation's pending records as a change (`*`), ordered
/// after the messages committed before it, for the fan-out.
///
/// KEYS: changed messages, log, pending, membership counter, and for a
/// group its members. ARGV: seq, expected record (`''`: the
/// log's), new record, the pending record's `ts|keep|min_ts|` part, event,
/// the reacting user (`''`: none), the recipients `u1,u2,…` (a group's are
/// read here), `r` for a room (members checked, no recipients: the pending
/// record only feeds the firehose) or `''`. Answers `{1, first pending records, recipients}`, `{2}`
/// (the reacting user is no member), `{3}` (changed since read) or `{4}`
/// (no such message).
pub(crate) static UPDATE_CONV: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        swap_message!(),
        r#"
local recipients = ARGV[7]
if KEYS[5] then
  if ARGV[6] ~= '' and redis.call('HEXISTS', KEYS[5], ARGV[6]) == 0 then return {2} end
  if ARGV[8] ~= 'r' then recipients = table.concat(redis.call('HKEYS', KEYS[5]), ',') end
end
local refused = swap_message(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])
if refused then return {refused} end
local last = stream_head(KEYS[2])
local m = redis.call('INCR', KEYS[4])
local record = string.format('%d|m%020d|', last, m) .. ARGV[4] .. '*|' .. ARGV[5] .. '|'
  .. recipients
redis.call('ZADD', KEYS[3], last, record)
return {1, redis.call('ZRANGE', KEYS[3], 0, 63), recipients}
"#
    ))
});

/// Messages `from..=to` of a conversation: the log's entries, and the
/// records of those changed since (out of the log), in one consistent read.
///
/// KEYS: log, changed messages. ARGV: from, to. Answers
/// `{entries, {seq, record, …}}`.
pub(crate) static READ_MESSAGES: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local from, to = math.max(tonumber(ARGV[1]), 1), tonumber(ARGV[2])
local last = stream_head(KEYS[1])
if to > last then to = last end
local entries = {}
if from <= to then
  entries = redis.call('XRANGE', KEYS[1], string.format('0-%d', from), string.format('0-%d', to))
end
local found, changed = {}, {}
for _, e in ipairs(entries) do found[id_pos(e[1])] = true end
if #entries < to - from + 1 then
  for seq = from, to do
    if not found[seq] then
      local c = redis.call('HGET', KEYS[2], string.format('%d', seq))
      if c then
        table.insert(changed, seq)
        table.insert(changed, c)
      end
    end
  end
end
return {entries, changed}
"#
    ))
});

/// The last seq of a conversation (its log's last id), 0 for none.
///
/// KEYS: log. Answers the seq.
pub(crate) static LAST_SEQ: LazyLock<Script> =
    LazyLock::new(|| Script::new(concat!(prelude!(), "return stream_head(KEYS[1])\n")));

/// A change set (or, on a cluster, the part of one in a slot).
///
/// KEYS: every key the ops name, by index. ARGV: channel (`''`: no
/// publish), payload, then the ops:
/// `set k value`, `hset k field value`, `hdel k field`,
/// `read k conversation seq` (raise an existing entry's read cursor),
/// `feed kfeed ts event keep min_ts`, `del k`, `clear kfeed`
/// (drop every event of a feed, keeping its head),
/// `fire kfire ts user event` (append to a firehose partition).
/// `member kmembers kids user value conversation` puts (value `''`:
/// removes) a member in the members hash and the index of their ids; on
/// a single Redis (conversation not `''`) it first fixes the user's entry
/// at the activity it has now, and clears the group's `clean` when a
/// member arrives without an entry.
/// On a single Redis only (they touch keys built from the prefix, ARGV 3),
/// the writes that keep a group's conversation activity and a direct
/// conversation's `@<conv>` field right:
/// `entry kentries conversation read_seq activity` puts an entry whose
/// own activity counts (and drops its `@<conv>` field); `unentry kentries
/// conversation` removes one (both fields) and, for a group, clears
/// `clean`.
pub(crate) static APPLY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local prefix = ARGV[3]
local function activity_key(conv) return prefix .. '{c:' .. conv .. '}:activity' end
local function is_group(conv) return string.sub(conv, 1, 6) == 'group:' end
local i = 4
while i <= #ARGV do
  local op = ARGV[i]
  local k = KEYS[tonumber(ARGV[i + 1])]
  if op == 'set' then
    redis.call('SET', k, ARGV[i + 2])
    i = i + 3
  elseif op == 'hset' then
    redis.call('HSET', k, ARGV[i + 2], ARGV[i + 3])
    i = i + 4
  elseif op == 'hdel' then
    redis.call('HDEL', k, ARGV[i + 2])
    i = i + 3
  elseif op == 'read' then
    local r, a, since = get_entry(k, ARGV[i + 2])
    if r and r < tonumber(ARGV[i + 3]) then
      redis.call('HSET', k, ARGV[i + 2], entry_value(tonumber(ARGV[i + 3]), a, since))
    end
    i = i + 4
  elseif op == 'member' then
    local ids = KEYS[tonumber(ARGV[i + 2])]
    local user, value, conv = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
    if conv ~= '' then fix_entry(prefix, k, user, conv, value ~= '') end
    if value ~= '' then
      member_put(k, ids, user, value)
    else
      member_remove(k, ids, user)
    end
    i = i + 6
  elseif op == 'entry' then
    local conv = ARGV[i + 2]
    local since = 0
    if is_group(conv) then
      since = tonumber(redis.call('HGET', activity_key(conv), 'seq') or '0')
    end
    redis.call('HSET', k, conv, entry_value(tonumber(ARGV[i + 3]), ARGV[i + 4], since))
    redis.call('HDEL', k, '@' .. conv)
    i = i + 5
  elseif op == 'unentry' then
    local conv = ARGV[i + 2]
    redis.call('HDEL', k, conv, '@' .. conv)
    if is_group(conv) then redis.call('HSET', activity_key(conv), 'clean', '0') end
    i = i + 3
  elseif op == 'del' then
    redis.call('DEL', k)
    i = i + 2
  elseif op == 'clear' then
    -- An empty stream still knows its last id: the positions go on.
    redis.call('XTRIM', k, 'MAXLEN', 0)
    i = i + 2
  elseif op == 'fire' then
    fire_append(k, ARGV[i + 2], ARGV[i + 3], ARGV[i + 4])
    i = i + 5
  elseif op == 'feed' then
    feed_append(k, ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5]))
    i = i + 6
  else
    return redis.error_reply('unknown op ' .. tostring(op))
  end
end
if ARGV[1] ~= '' then redis.call('PUBLISH', ARGV[1], ARGV[2]) end
return 1
"#
    ))
});

/// A consistent read of a feed: its bounds and up to `limit` entries after
/// `after`. The head is the stream's last id ever given; what was trimmed
/// is everything before its first entry (everything, when it is empty).
///
/// KEYS: feed. ARGV: after, limit. Answers `{head, trimmed, entries}`.
pub(crate) static FEED_READ: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0, {}} end
local function pos(id) return tonumber(string.match(id, '^0%-(%d+)$')) end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local head, trimmed = nil, nil
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then
    head = pos(info[i + 1])
  elseif info[i] == 'first-entry' and info[i + 1] then
    trimmed = pos(info[i + 1][1]) - 1
  end
end
trimmed = trimmed or head
local from = math.max(tonumber(ARGV[1]), trimmed)
local entries = {}
if tonumber(ARGV[2]) > 0 and from < head then
  entries = redis.call('XRANGE', KEYS[1], string.format('0-%d', from + 1), '+', 'COUNT', ARGV[2])
end
return {head, trimmed, entries}
"#,
    )
});

/// A user's index entries (ARGV 3 `''`) or one of them, each
/// `read_seq:activity` with the activity it has now: its `@<conv>`
/// field's when that is newer (see `own_entry`), and a group member's
/// the conversation's when that is newer (see `parse_entry`). Single
/// Redis only: the conversations' keys are built from the prefix.
///
/// KEYS: entries. ARGV: key prefix, user, conversation or `''`. Answers
/// `{conversation, value, …}`.
pub(crate) static ENTRIES_READ: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local prefix, user = ARGV[1], ARGV[2]
local out = {}
-- `v` the entry's field, `act` its `@<conv>` field (see `own_entry`).
local function one(conv, v, act)
  if v and not parse_entry(v) then
    table.insert(out, conv)
    table.insert(out, v)
    return
  end
  local r, a, since = own_entry(v, act)
  if string.sub(conv, 1, 6) == 'group:' then
    local c = prefix .. '{c:' .. conv .. '}:'
    local act = redis.call('HMGET', c .. 'activity', 'seq', 'ts')
    if act[1] and tonumber(act[1]) > since and redis.call('HEXISTS', c .. 'members', user) == 1
    then
      a = act[2]
    end
  end
  table.insert(out, conv)
  table.insert(out, string.format('%d:', r) .. a)
end
if ARGV[3] ~= '' then
  local v = redis.call('HMGET', KEYS[1], ARGV[3], '@' .. ARGV[3])
  if v[1] or v[2] then one(ARGV[3], v[1], v[2]) end
else
  local all = redis.call('HGETALL', KEYS[1])
  local acts = {}
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 1) == '@' then acts[string.sub(all[i], 2)] = all[i + 1] end
  end
  for i = 1, #all, 2 do
    local conv = all[i]
    if string.sub(conv, 1, 1) ~= '@' then
      one(conv, all[i + 1], acts[conv])
      acts[conv] = nil
    end
  end
  for conv, act in pairs(acts) do one(conv, false, act) end
end
return out
"#
    ))
});

/// Turns a feed of format 3 (ids `<pos>-0`, bounds in `P{u:U}:feedmeta`)
/// into format 4's (ids `0-<pos>`, bounds from the stream), in one step:
/// a crash leaves it wholly old or wholly new, and a feed without its
/// `feedmeta` is new already.
///
/// KEYS: feed, feedmeta. Answers 1 when it converted, 0 when there was
/// nothing to do.
pub(crate) static FEED_V3_TO_V4: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local m = redis.call('HMGET', KEYS[2], 'head', 'trimmed')
if not m[1] then
  redis.call('DEL', KEYS[2])
  return 0
end
local head = tonumber(m[1])
local old = redis.call('XRANGE', KEYS[1], '-', '+')
redis.call('DEL', KEYS[1])
for _, e in ipairs(old) do
  local p = tonumber(string.match(e[1], '^(%d+)%-'))
  redis.call('XADD', KEYS[1], string.format('0-%d', p), unpack(e[2]))
end
if head > 0 then
  if #old == 0 then
    redis.call('XADD', KEYS[1], string.format('0-%d', head), 't', '0', 'e', '')
    redis.call('XTRIM', KEYS[1], 'MAXLEN', 0)
  else
    redis.call('XSETID', KEYS[1], string.format('0-%d', head))
  end
end
redis.call('DEL', KEYS[2])
return 1
"#,
    )
});

/// Turns a stream numbered by a counter (format 4's logs and firehose
/// partitions: ids `<n>-0`, the last given in the counter) into one
/// numbered by itself (ids `0-<n>`), a batch of entries per call: they are
/// copied with their numbers into a new stream beside it, and the last
/// call gives the new stream the counter's last number, puts it in the
/// old one's place and deletes the counter. So an interrupted upgrade
/// leaves the old stream and its counter whole, and the next call goes on
/// from the new stream's last entry; a stream without its counter is new
/// already.
///
/// KEYS: the stream, its counter, the new stream. ARGV: batch size.
/// Answers 1 when the stream is new, 0 when there is more to copy.
pub(crate) static STREAM_V4_TO_V5: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local head = redis.call('GET', KEYS[2])
if not head then return 1 end
local from = '-'
local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
if last[1] then from = '(' .. string.sub(last[1][1], 3) .. '-0' end
local batch = redis.call('XRANGE', KEYS[1], from, '+', 'COUNT', ARGV[1])
for _, e in ipairs(batch) do
  local n = string.match(e[1], '^(%d+)%-0$')
  redis.call('XADD', KEYS[3], '0-' .. n, unpack(e[2]))
end
if #batch == tonumber(ARGV[1]) then return 0 end
head = tonumber(head)
if head > 0 then
  if redis.call('EXISTS', KEYS[3]) == 0 then
    redis.call('XADD', KEYS[3], string.format('0-%d', head), 'x', '')
    redis.call('XTRIM', KEYS[3], 'MAXLEN', 0)
  else
    redis.call('XSETID', KEYS[3], string.format('0-%d', head))
  end
  redis.call('RENAME', KEYS[3], KEYS[1])
else
  redis.call('DEL', KEYS[1], KEYS[3])
end
redis.call('DEL', KEYS[2])
return 1
"#,
    )
});

/// The firehose half of a fan-out on a cluster: appends the pending
/// records of one conversation to its firehose partition, in order, each
/// at most once, with the partition's watermark for the conversation
/// (`P{f:K}:firemarks`, as `FANOUT_USER` keeps the users').
///
/// KEYS: firehose, firemarks. ARGV: conversation, then per record,
/// ascending: seq, mseq, ts, event (`''` for a message). Answers how many
/// were appended.
pub(crate) static FIRE_CONV: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local conv = ARGV[1]
local ws, wm = read_mark(KEYS[2], conv)
local applied = 0
for i = 2, #ARGV, 4 do
  local seq, mseq, ts, event = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3]
  if seq > ws or (seq == ws and mseq > wm) then
    if mseq == 0 then event = message_event(conv, seq) end
    fire_append(KEYS[1], ts, '', event)
    ws, wm = seq, mseq
    applied = applied + 1
  end
end
if applied > 0 then write_mark(KEYS[2], conv, ws, wm) end
return applied
"#
    ))
});

/// A read of a firehose partition: its head and up to `limit` entries
/// after `after`.
///
/// KEYS: firehose. ARGV: after, limit. Answers `{head, entries}`.
pub(crate) static FIRE_READ: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local head = stream_head(KEYS[1])
local entries = {}
if tonumber(ARGV[2]) > 0 and tonumber(ARGV[1]) < head then
  entries = redis.call('XRANGE', KEYS[1], string.format('0-%d', tonumber(ARGV[1]) + 1), '+',
    'COUNT', ARGV[2])
end
return {head, entries}
"#
    ))
});

/// A page of a group's (or room's) members by id: up to `limit` ids after
/// `after` from the index of their ids, and their records from the
/// members hash, read together.
///
/// KEYS: member ids, members. ARGV: after (`''`: from the first), limit
/// (at least 1). Answers `{id, record, …}`, a record `false` (nil) when
/// the hash has no such member, which only a damaged store has.
pub(crate) static MEMBERS_PAGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local from = '-'
if ARGV[1] ~= '' then from = '(' .. ARGV[1] end
local ids = redis.call('ZRANGE', KEYS[1], from, '+', 'BYLEX', 'LIMIT', 0, ARGV[2])
local out = {}
-- HMGET in parts: `unpack` is bounded by Lua's stack.
for i = 1, #ids, 500 do
  local part = redis.call('HMGET', KEYS[2], unpack(ids, i, math.min(i + 499, #ids)))
  for j, record in ipairs(part) do
    table.insert(out, ids[i + j - 1])
    table.insert(out, record)
  end
end
return out
"#,
    )
});

/// Adds a batch of a members hash's ids to the index of ids (format 6),
/// for the upgrade from format 5: one `HSCAN` step per call, so that no
/// call holds Redis long on a room of a million members. Adding an id
/// twice changes nothing, so an interrupted upgrade starts over.
///
/// KEYS: members, member ids. ARGV: the `HSCAN` cursor (`0` to start),
/// batch size. Answers the next cursor (`0`: done).
pub(crate) static MEMBER_IDS_V5_TO_V6: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local r = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
for i = 1, #r[2], 2 do redis.call('ZADD', KEYS[2], 0, r[2][i]) end
return r[1]
"#,
    )
});

/// Takes a lease for a holder when nobody holds it, or renews it when the
/// holder does (`SET NX PX`, and a compare-and-renew).
///
/// KEYS: the lease. ARGV: holder, ttl in ms. Answers 1 when the holder
/// holds it now, else 0.
pub(crate) static LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"#,
    )
});

/// Every script, to load them at start (on every node of a cluster).
pub(crate) fn all() -> [&'static Script; 23] {
    [
        &FIRE_CONV,
        &FIRE_READ,
        &LEASE,
        &UPDATE_ALL,
        &UPDATE_CONV,
        &READ_MESSAGES,
        &SEND_ALL,
        &SEND_GROUP,
        &MEMBER_ALL,
        &SEND_ROOM,
        &MEMBER_ROOM,
        &SEND_CONV,
        &MEMBER_CONV,
        &FANOUT_USER,
        &FANOUT_NODE,
        &APPLY,
        &FEED_READ,
        &ENTRIES_READ,
        &FEED_V3_TO_V4,
        &LAST_SEQ,
        &STREAM_V4_TO_V5,
        &MEMBERS_PAGE,
        &MEMBER_IDS_V5_TO_V6,
    ]
}
