//! The Redis store of `im-engine`.
//!
//! Not implemented yet: the work is tracked as its own issue. The crate exists
//! so that the workspace has its final shape and `im-http` can grow a `redis`
//! feature without moving files.
