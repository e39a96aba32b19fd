//! The firehose: every stored event of every user once (a message once, not
//! once per recipient), for an admin (`GET /v1/admin/events`) and for the
//! webhooks that forward it.
//!
//! The store writes it in the same atomic step as the feeds, spread over
//! [`Store::firehose_partitions`](crate::Store::firehose_partitions)
//! partitions (one on most stores). A [`FireCursor`] names a position in
//! each, so resuming is one range read per partition; reads merge the
//! partitions by time, keeping each partition's own order.
//!
//! - `cursor`: [`FireCursor`] and [`FireStart`], their one spelling.
//! - `read`: reading, the long poll and the live stream.

mod cursor;
mod read;

pub use cursor::{FireCursor, FireStart};
pub use read::{FireDelivered, FirePage};
