//! The user-slot step of a cluster fan-out: pending records of one
//! conversation applied to each recipient's slot (see `write`).
//!
//! The recipients are grouped by the node that serves their slots
//! (`slots`), and each node gets one [`scripts::FANOUT_NODE`] call that
//! carries the records once, instead of a [`scripts::FANOUT_USER`] call
//! per recipient that carries them all again: for a few records to a
//! 100-member group on 3 nodes, 3 calls instead of 100 (a call's size is
//! bounded, [`APPENDS_PER_CALL`]). A node's call that fails (its slots
//! moved, or the map is out of date) is done again one user at a time,
//! which the watermarks make safe: what the failed call applied is
//! skipped, and nothing is applied twice.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::future::join_all;
use im_engine::UserId;
use redis::RedisError;

use crate::codec::Pending;
use crate::error::Result;
use crate::scripts;
use crate::slots::user_slot;
use crate::store::Shared;

/// The most feed appends (recipients × their records) one call makes: a
/// script holds its master for its whole run, at a few µs an append, so a
/// big fan-out (a 10,000-member group, or 64 records for 100 members) is
/// cut into calls of a few milliseconds, and other clients' commands run
/// between them. The tests cut at 8 recipients, so that their groups take
/// several calls per master.
const APPENDS_PER_CALL: usize = 1024;

/// How many recipients of `records` records one call serves.
fn per_call(records: usize) -> usize {
    if cfg!(test) {
        8
    } else {
        (APPENDS_PER_CALL / records.max(1)).max(1)
    }
}

/// A recipient and the indexes of its records.
pub(crate) type Share<'a> = (&'a UserId, Vec<usize>);

/// Applies `records` (ascending) of conversation `conv` to their
/// recipients; answers the users whose feeds grew.
pub(crate) async fn to_users(
    s: &Shared,
    conv: &str,
    records: &[Pending],
) -> Result<BTreeSet<UserId>> {
    let mut per_user: BTreeMap<&UserId, Vec<usize>> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        for u in &r.recipients {
            let idx = per_user.entry(u).or_default();
            // Ascending and once each, whatever the record lists.
            if idx.last() != Some(&i) {
                idx.push(i);
            }
        }
    }
    let groups = by_node(s, per_user.into_iter().collect(), records.len()).await;
    let woken = join_all(groups.iter().map(|g| to_group(s, conv, records, g))).await;
    let mut all = BTreeSet::new();
    for (g, woken) in groups.iter().zip(woken) {
        for ((u, _), woken) in g.iter().zip(woken?) {
            if woken {
                all.insert((*u).clone());
            }
        }
    }
    Ok(all)
}

/// The recipients grouped by the node serving them, in calls of at most
/// [`per_call`]; each alone when the slot map cannot be read.
async fn by_node<'a>(s: &Shared, shares: Vec<Share<'a>>, records: usize) -> Vec<Vec<Share<'a>>> {
    if shares.len() < 2 {
        return vec![shares];
    }
    let map = match s.slots.get(&mut s.conn()).await {
        Ok(Some(map)) => map,
        Ok(None) => return shares.into_iter().map(|sh| vec![sh]).collect(),
        Err(e) => {
            // At most once per retry interval: an operator should hear of
            // an ACL that refuses `CLUSTER SLOTS`, which costs speed.
            tracing::warn!(
                error = %e,
                "cannot read the cluster's slot map (CLUSTER SLOTS): fan-outs make one script per recipient"
            );
            return shares.into_iter().map(|sh| vec![sh]).collect();
        }
    };
    let mut nodes: BTreeMap<&str, Vec<Share<'a>>> = BTreeMap::new();
    let mut alone = Vec::new();
    for sh in shares {
        match map.node(user_slot(sh.0)) {
            Some(node) => nodes.entry(node).or_default().push(sh),
            None => alone.push(vec![sh]),
        }
    }
    let (per_call, mut groups) = (per_call(records), Vec::new());
    for mut shares in nodes.into_values() {
        while shares.len() > per_call {
            let rest = shares.split_off(per_call);
            groups.push(shares);
            shares = rest;
        }
        groups.push(shares);
    }
    groups.extend(alone);
    groups
}

/// One node's recipients: one call for all, or, when that fails, one each.
/// Answers whether each one's feed may have grown, in order.
async fn to_group(
    s: &Shared,
    conv: &str,
    records: &[Pending],
    group: &[Share<'_>],
) -> Result<Vec<bool>> {
    // Whether a call failed: it may have applied some users, for whom the
    // scripts below then apply nothing.
    let mut partly = false;
    if group.len() > 1 {
        match to_node(s, conv, records, group).await {
            Ok(applied) if applied.len() == group.len() => {
                return Ok(applied.into_iter().map(|n| n > 0).collect());
            }
            Ok(_) => s.slots.forget(),
            Err(e) => {
                tracing::debug!(error = %e, "a node's fan-out failed: one script per recipient");
                s.slots.forget();
            }
        }
        partly = true;
    }
    let applied = join_all(
        group
            .iter()
            .map(|(u, idx)| to_user(s, conv, records, u, idx)),
    )
    .await;
    // After a failed call, everyone is told: a notification too many only
    // makes a stream read its feed.
    applied.into_iter().map(|n| Ok(partly || n? > 0)).collect()
}

/// One [`scripts::FANOUT_NODE`] call for `group`, routed by its first
/// user's slot.
pub(crate) async fn to_node(
    s: &Shared,
    conv: &str,
    records: &[Pending],
    group: &[Share<'_>],
) -> std::result::Result<Vec<u64>, RedisError> {
    let k = &s.keys;
    let mut inv = scripts::FANOUT_NODE.prepare_invoke();
    inv.key(k.fanned(group[0].0))
        .arg(conv)
        .arg(k.prefix())
        .arg(records.len());
    for r in records {
        record_args(&mut inv, r);
    }
    for (u, idx) in group {
        inv.arg(u.as_str());
        if idx.len() == records.len() {
            inv.arg("");
        } else {
            let pick: Vec<String> = idx.iter().map(|i| (i + 1).to_string()).collect();
            inv.arg(pick.join(","));
        }
    }
    inv.invoke_async(&mut s.conn()).await
}

/// One [`scripts::FANOUT_USER`] call: `user`'s records, by index.
async fn to_user(
    s: &Shared,
    conv: &str,
    records: &[Pending],
    user: &UserId,
    idx: &[usize],
) -> std::result::Result<u64, RedisError> {
    let k = &s.keys;
    let mut inv = scripts::FANOUT_USER.prepare_invoke();
    inv.key(k.entries(user))
        .key(k.feed(user))
        .key(k.fanned(user))
        .arg(conv)
        .arg(user.as_str());
    for &i in idx {
        record_args(&mut inv, &records[i]);
    }
    inv.invoke_async(&mut s.conn()).await
}

/// A record's seven fields, as the fan-out scripts take them.
fn record_args(inv: &mut redis::ScriptInvocation<'_>, r: &Pending) {
    inv.arg(r.seq)
        .arg(r.mseq)
        .arg(r.ts)
        .arg(r.keep)
        .arg(r.min_ts)
        .arg(&r.who)
        .arg(&r.event);
}
