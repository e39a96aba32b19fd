//! What the `sled_keys` fuzz target runs, here so that an ordinary test
//! replays its corpus on stable. Not part of the crate's API.
//!
//! Two properties of the key layouts of [`keys`](crate::keys): decoding any
//! bytes never panics and, when it succeeds, encoding the parts gives the
//! same bytes back (keys are canonical); and encoding then decoding any
//! valid parts gives the same parts. The same two of a feed key's value (one
//! event, or a run of them).

use im_engine::{ConversationId, GroupId, UserId};

use crate::codec;
use crate::keys::{self, SEP};

/// Checks both properties on `data`.
///
/// # Panics
///
/// When a property does not hold: that is the finding.
pub fn keys(data: &[u8]) {
    decode_any(data);
    round_trip(data);
    feed_value(data);
}

/// Decodes `data` as a feed key's value: when it decodes, encoding its
/// events gives it back; and events cut from `data` (at `0xFF`, each given
/// a time) encode into a value that decodes to them.
fn feed_value(data: &[u8]) {
    if let Ok(events) = codec::feed_events(data) {
        assert_eq!(codec::feed_value(&events), data);
        assert_eq!(codec::feed_len(data).ok(), Some(events.len() as u64));
    }
    let events: Vec<Vec<u8>> = data
        .split(|&b| b == SEP)
        .map(|json| [&[0, 0, 0, 0, 0, 0, 0, 1][..], b"{", json].concat())
        .collect();
    let refs: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
    let value = codec::feed_value(&refs);
    assert_eq!(codec::feed_events(&value).expect("a value encoded"), refs);
}

/// Decodes `key` as every kind; each kind that decodes it must give it
/// back, and at most one may (the kind tag tells them apart).
fn decode_any(key: &[u8]) {
    if let Some(c) = keys::decode_conv(key) {
        assert_eq!(keys::conv(&c), key);
    }
    let mut kinds = 0;
    let mut check = |encoded: Option<Vec<u8>>| {
        if let Some(encoded) = encoded {
            assert_eq!(encoded, key);
            kinds += 1;
        }
    };
    check(keys::decode_user(key).map(|u| keys::user(&u)));
    check(keys::decode_owner_contact(key).map(|(o, c)| keys::owner_contact(&o, &c)));
    check(keys::decode_group(key).map(|g| keys::group(&g)));
    check(keys::decode_group_user(key).map(|(g, u)| keys::group_user(&g, &u)));
    check(keys::decode_conv_state(key).map(|c| keys::conv_state(&keys::conv(&c))));
    check(keys::decode_conv_seq(key).map(|(c, seq)| keys::conv_seq(&keys::conv(&c), seq)));
    check(
        keys::decode_conv_sender_client_id(key)
            .map(|(c, s, id)| keys::conv_sender_client_id(&keys::conv(&c), &s, &id)),
    );
    check(keys::decode_user_conv(key).map(|(u, c)| keys::user_conv(&u, &keys::conv(&c))));
    check(keys::decode_user_pos(key).map(|(u, pos)| keys::user_pos(&u, pos)));
    check(keys::decode_feed_floor(key).map(|u| keys::feed_floor(&u)));
    check(keys::decode_last_seen(key).map(|u| keys::last_seen(&u)));
    assert!(kinds <= 1, "{key:?} decodes as {kinds} kinds");
}

/// Parts made from `data`: ids from its first fields (split at `0x00`),
/// valid or not, which are skipped when invalid.
fn round_trip(data: &[u8]) {
    let mut fields = data.split(|&b| b == 0);
    let mut next = || String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    let (a, b, client_id) = (next(), next(), next());
    let number = data
        .iter()
        .fold(0u64, |n, &b| n.rotate_left(8) ^ u64::from(b));
    let (Ok(ua), Ok(ub)) = (UserId::new(&a), UserId::new(&b)) else {
        return;
    };
    let group = GroupId::new(&a).expect("a valid user id is a valid group id");
    let mut convs = vec![ConversationId::group(group.clone())];
    convs.extend(ConversationId::direct(ua.clone(), ub.clone()).ok());
    assert_eq!(keys::decode_user(&keys::user(&ua)), Some(ua.clone()));
    assert_eq!(
        keys::decode_group(&keys::group(&group)),
        Some(group.clone())
    );
    assert_eq!(
        keys::decode_feed_floor(&keys::feed_floor(&ua)),
        Some(ua.clone())
    );
    assert_eq!(
        keys::decode_last_seen(&keys::last_seen(&ua)),
        Some(ua.clone())
    );
    assert_eq!(
        keys::decode_owner_contact(&keys::owner_contact(&ua, &ub)),
        Some((ua.clone(), ub.clone()))
    );
    assert_eq!(
        keys::decode_group_user(&keys::group_user(&group, &ub)),
        Some((group, ub.clone()))
    );
    assert_eq!(
        keys::decode_user_pos(&keys::user_pos(&ua, number)),
        Some((ua.clone(), number))
    );
    // A client id never holds 0xFF (UTF-8 cannot), so it stays last.
    assert!(!client_id.as_bytes().contains(&SEP));
    for c in convs {
        let conv = keys::conv(&c);
        assert_eq!(keys::decode_conv(&conv), Some(c.clone()));
        assert_eq!(
            keys::decode_conv_state(&keys::conv_state(&conv)),
            Some(c.clone())
        );
        assert_eq!(
            keys::decode_conv_seq(&keys::conv_seq(&conv, number)),
            Some((c.clone(), number))
        );
        assert_eq!(
            keys::decode_conv_sender_client_id(&keys::conv_sender_client_id(
                &conv, &ub, &client_id
            )),
            Some((c.clone(), ub.clone(), client_id.clone()))
        );
        assert_eq!(
            keys::decode_user_conv(&keys::user_conv(&ua, &conv)),
            Some((ua.clone(), c))
        );
    }
}
