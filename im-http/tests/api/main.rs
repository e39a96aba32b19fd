//! Black-box tests of the HTTP API over real sockets: a server on
//! 127.0.0.1:0 in this process, or the built binary.

#[cfg(feature = "cli")]
mod binary;
mod changes;
mod common;
#[cfg(feature = "cli")]
mod configuration;
mod contacts;
mod cors;
mod events;
mod export;
mod firehose;
mod groups;
mod login;
#[cfg(all(feature = "cli", feature = "sled"))]
mod long_erase;
mod membership;
mod messages;
mod moderation;
mod numbers;
mod outage;
mod paging;
mod probes;
mod receiver;
mod rooms;
mod send_hook;
mod service;
mod signals;
#[cfg(all(feature = "cli", feature = "sled"))]
mod sled;
#[cfg(feature = "tls")]
mod tls;
mod tokens;
mod users;
mod web;
mod webhooks;
