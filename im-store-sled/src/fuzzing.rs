//! What the `sled_keys` fuzz target runs, here so that an ordinary test
//! replays its corpus on stable. Not part of the crate's API.
//!
//! Two properties of the key layouts of [`keys`](crate::keys): decoding any
//! bytes never panics and, when it succeeds, encoding the parts gives the
//! same bytes back (keys are canonical); and encoding then decoding any
//! valid parts gives the same parts.

use im_engine::{ConversationId, GroupId, UserId};

use crate::keys::{self, SEP};

/// Checks both properties on `data`.
///
/// # Panics
///
/// When a property does not hold: that is the finding.
pub fn keys(data: &[u8]) {
    decode_any(data);
    round_trip(data);
}

fn decode_any(key: &[u8]) {
    if let Some(c) = keys::decode_conv(key) {
        assert_eq!(keys::conv(&c), key);
    }
    if let Some((o, c)) = keys::decode_owner_contact(key) {
        assert_eq!(keys::owner_contact(&o, &c), key);
    }
    if let Some((g, u)) = keys::decode_group_user(key) {
        assert_eq!(keys::group_user(&g, &u), key);
    }
    if let Some((c, seq)) = keys::decode_conv_seq(key) {
        assert_eq!(keys::conv_seq(&keys::conv(&c), seq), key);
    }
    if let Some((c, s, id)) = keys::decode_conv_sender_client_id(key) {
        assert_eq!(keys::conv_sender_client_id(&keys::conv(&c), &s, &id), key);
    }
    if let Some((u, c)) = keys::decode_user_conv(key) {
        assert_eq!(keys::user_conv(&u, &keys::conv(&c)), key);
    }
    if let Some((u, pos)) = keys::decode_user_pos(key) {
        assert_eq!(keys::user_pos(&u, pos), key);
    }
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
