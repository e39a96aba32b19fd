//! Each user's event feed: cursors into it, reads, and the live stream.
//!
//! A feed is an append-only log of small references, numbered 1, 2, 3 … per
//! user. A [`Cursor`] is a position in it plus the store's
//! [`Epoch`](crate::Epoch), so resuming is one range read, and a cursor from
//! another store (or one pointing at trimmed events) is recognised and
//! answered with a reset, never silently skipped.
//!
//! - `cursor`: [`Cursor`] and [`Start`], their one spelling.
//! - `read`: reading a feed and resolving its references into
//!   [`EventData`], the messages lately delivered.
//! - `live`: the long poll and the live stream, which wait for wake-ups.

mod cursor;
pub(crate) mod live;
mod read;

pub use cursor::{Cursor, ResetReason, Start};
pub(crate) use cursor::{parse_epoch, parse_pos};
pub(crate) use read::RecentMessages;
pub use read::{Delivered, EventData, EventPage};
