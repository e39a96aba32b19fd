//! Validated identifiers: users, groups and conversations.
//!
//! Ids of users and groups are 1 to 64 characters of `A-Z a-z 0-9 _ . -`, so
//! they never contain `:` and a conversation id splits without ambiguity;
//! `.` and `..` are not ids, since clients rewrite such path segments.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// The longest user or group id, in characters.
pub const MAX_ID_LEN: usize = 64;

fn check_id(kind: &str, s: &str) -> Result<(), Error> {
    let ok = !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    // Browsers and curl rewrite `.` and `..` path segments away, so no
    // client could address such an id.
    if ok && s != "." && s != ".." {
        Ok(())
    } else {
        Err(Error::InvalidId(format!(
            "{kind} id must be 1 to {MAX_ID_LEN} characters of A-Z a-z 0-9 _ . -, \
             not one or two dots alone"
        )))
    }
}

macro_rules! plain_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Validates `s` as an id.
            ///
            /// # Errors
            ///
            /// [`Error::InvalidId`] when `s` is empty, longer than 64 characters,
            /// has a character outside `A-Z a-z 0-9 _ . -`, or is `.` or `..`.
            pub fn new(s: impl Into<String>) -> Result<Self, Error> {
                let s = s.into();
                check_id($kind, &s)?;
                Ok(Self(s))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                Self::new(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

plain_id!(
    /// The id of a user.
    UserId,
    "user"
);
impl UserId {
    /// An id no user has (it is no valid id): whose view of a message is
    /// everyone's, with no reaction of its own.
    pub(crate) fn nobody() -> Self {
        Self(String::new())
    }
}

plain_id!(
    /// The id of a group.
    GroupId,
    "group"
);

/// A conversation: the direct one of two users, a group's, or a room's.
///
/// Written `dm:<a>:<b>` with `a < b` bytewise (either order parses),
/// `group:<gid>` or `room:<rid>`. Groups and rooms share one namespace of
/// ids (a room is a group record of kind `room`), so `group:x` and `room:x`
/// never both exist.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConversationId {
    /// The direct conversation of two different users, the smaller id first.
    Direct(UserId, UserId),
    /// The conversation of a group's members.
    Group(GroupId),
    /// A room's: its messages are stored once, in its log, and read by its
    /// members (no copy or reference in their feeds).
    Room(GroupId),
}

impl ConversationId {
    /// The direct conversation of `a` and `b`, in either order.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidId`] when `a == b`: a direct conversation needs two users.
    pub fn direct(a: UserId, b: UserId) -> Result<Self, Error> {
        match a.cmp(&b) {
            std::cmp::Ordering::Less => Ok(Self::Direct(a, b)),
            std::cmp::Ordering::Greater => Ok(Self::Direct(b, a)),
            std::cmp::Ordering::Equal => Err(Error::InvalidId(
                "a direct conversation needs two different users".into(),
            )),
        }
    }

    /// The conversation of group `g`.
    pub fn group(g: GroupId) -> Self {
        Self::Group(g)
    }

    /// The conversation of room `r`.
    pub fn room(r: GroupId) -> Self {
        Self::Room(r)
    }

    /// `"dm"`, `"group"` or `"room"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Direct(..) => "dm",
            Self::Group(_) => "group",
            Self::Room(_) => "room",
        }
    }

    /// The group or room whose conversation this is.
    pub fn space(&self) -> Option<&GroupId> {
        match self {
            Self::Direct(..) => None,
            Self::Group(g) | Self::Room(g) => Some(g),
        }
    }

    /// The other participant of a direct conversation, seen from `me`, or the
    /// group id: the `with` field of the conversation list.
    pub fn with(&self, me: &UserId) -> &str {
        match self {
            Self::Direct(a, b) if a == me => b.as_str(),
            Self::Direct(a, _) => a.as_str(),
            Self::Group(g) | Self::Room(g) => g.as_str(),
        }
    }
}

impl fmt::Display for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Direct(a, b) => write!(f, "dm:{a}:{b}"),
            Self::Group(g) => write!(f, "group:{g}"),
            Self::Room(r) => write!(f, "room:{r}"),
        }
    }
}

impl fmt::Debug for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

impl FromStr for ConversationId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if let Some(rest) = s.strip_prefix("dm:") {
            let (a, b) = rest.split_once(':').ok_or_else(|| {
                Error::InvalidId("a direct conversation id is dm:<user>:<user>".into())
            })?;
            Self::direct(a.parse()?, b.parse()?)
        } else if let Some(g) = s.strip_prefix("group:") {
            Ok(Self::Group(g.parse()?))
        } else if let Some(r) = s.strip_prefix("room:") {
            Ok(Self::Room(r.parse()?))
        } else {
            Err(Error::InvalidId(
                "a conversation id is dm:<user>:<user>, group:<group> or room:<room>".into(),
            ))
        }
    }
}

impl Serialize for ConversationId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConversationId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Arbitrary ids for the fuzz targets: mostly one of four short ids (`u0`
/// to `u3`, `g0` to `g3`), so that generated commands meet the same users
/// and groups again, sometimes any valid id.
#[cfg(feature = "arbitrary")]
mod arbitrary_ids {
    use arbitrary::{Arbitrary, Result, Unstructured};

    use super::{ConversationId, GroupId, MAX_ID_LEN, UserId};

    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-";

    fn id(u: &mut Unstructured<'_>, prefix: char) -> Result<String> {
        let pick: u8 = u.arbitrary()?;
        if pick < 224 {
            return Ok(format!("{prefix}{}", pick % 4));
        }
        let len = u.int_in_range(1..=MAX_ID_LEN)?;
        let id: String = (0..len)
            .map(|_| u.choose(ALPHABET).map(|&b| char::from(b)))
            .collect::<Result<_>>()?;
        // Only valid ids: not `.` or `..`.
        Ok(if id.bytes().all(|b| b == b'.') && id.len() <= 2 {
            format!("{prefix}{id}")
        } else {
            id
        })
    }

    impl<'a> Arbitrary<'a> for UserId {
        fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
            Ok(Self(id(u, 'u')?))
        }
    }

    impl<'a> Arbitrary<'a> for GroupId {
        fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
            Ok(Self(id(u, 'g')?))
        }
    }

    impl<'a> Arbitrary<'a> for ConversationId {
        fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
            match u.int_in_range(0..=3u8)? {
                0 => return Ok(Self::Group(u.arbitrary()?)),
                1 => return Ok(Self::Room(u.arbitrary()?)),
                _ => {}
            }
            let (a, b): (UserId, UserId) = u.arbitrary()?;
            // Two equal users make no direct conversation: take the group of
            // the same name instead.
            Self::direct(a.clone(), b)
                .or_else(|_| GroupId::new(a.0).map(Self::Group))
                .map_err(|_| arbitrary::Error::IncorrectFormat)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_the_documented_alphabet_only() {
        assert!(UserId::new("Alice_01.x-y").is_ok());
        assert!(UserId::new("...").is_ok() && UserId::new(".a").is_ok());
        assert!(UserId::new("a".repeat(64)).is_ok());
        for bad in ["", "a:b", "é", "a b", "a/b", "a\n", ".", ".."] {
            assert!(UserId::new(bad).is_err(), "{bad:?}");
        }
        assert!(UserId::new("a".repeat(65)).is_err());
    }

    #[test]
    fn direct_ids_are_sorted_and_round_trip() {
        let c: ConversationId = "dm:bob:alice".parse().unwrap();
        assert_eq!(c.to_string(), "dm:alice:bob");
        assert_eq!(c.with(&UserId::new("alice").unwrap()), "bob");
        assert_eq!(
            "group:g1".parse::<ConversationId>().unwrap().to_string(),
            "group:g1"
        );
        assert_eq!(
            "room:r1".parse::<ConversationId>().unwrap().to_string(),
            "room:r1"
        );
        for bad in [
            "dm:a:a", "dm:a", "dm:a:b:c", "group:", "room:", "room:a:b", "chan:x", "", "dm::b",
        ] {
            assert!(bad.parse::<ConversationId>().is_err(), "{bad:?}");
        }
    }
}
