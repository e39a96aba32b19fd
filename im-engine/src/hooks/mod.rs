//! Hooks: how a host program acts on messages.
//!
//! A host implements [`Hooks`] and hands it to the engine with
//! [`EngineBuilder::hooks`](crate::EngineBuilder::hooks):
//!
//! - [`Hooks::before_send`] sees each would-be message before it is
//!   committed, inline, within [`HookConfig::send_timeout`]; its
//!   [`Verdict`] lets the send through, refuses it with a code and a message
//!   ([`Error::Refused`](crate::Error::Refused), which HTTP answers as 403
//!   with that code), or replaces the body;
//! - [`Hooks::after_commit`] sees every committed event once
//!   ([`Committed`]), in commit order as the engine saw it, from one task
//!   fed by an unbounded queue: a slow hook never delays the write that
//!   caused the event, and no event the engine reported is dropped while
//!   the process lives.
//!
//! Layout: this file holds the trait and the values it speaks; `queue` the
//! after-commit task; `gate` the engine's side (the before-send check, and
//! the store writes that report what they committed).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::Serialize;

use crate::data::{Body, Event, Message, NewMessage, Timestamp, UserId};

mod gate;
mod queue;

pub(crate) use queue::AfterCommit;

/// What a hook method returns: a boxed future, so that [`Hooks`] is
/// object-safe and the engine keeps one `Arc<dyn Hooks>`.
pub type HookFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a host program does with messages and events. Every method has a
/// default that allows everything and ignores events, so a host implements
/// only the ones it needs.
///
/// ```
/// use im_engine::{Committed, HookFuture, Hooks, NewMessage, Verdict};
///
/// struct NoShouting;
///
/// impl Hooks for NoShouting {
///     fn before_send<'a>(&'a self, m: &'a NewMessage) -> HookFuture<'a, Verdict> {
///         let loud = m.body.get().contains("!!!");
///         Box::pin(async move {
///             if loud {
///                 Verdict::refuse("shouting", "no shouting here")
///             } else {
///                 Verdict::Allow
///             }
///         })
///     }
/// }
/// ```
pub trait Hooks: Send + Sync + 'static {
    /// Decides on a message before it is committed: after every check that
    /// needs no store write (ids, limits, authorization, `reply_to`), and
    /// before the store numbers and stores it. A repeat of an earlier
    /// `client_id` is asked about too (the store recognises it only at the
    /// commit).
    fn before_send<'a>(&'a self, message: &'a NewMessage) -> HookFuture<'a, Verdict> {
        let _ = message;
        Box::pin(std::future::ready(Verdict::Allow))
    }

    /// Hears of one committed event. Called from one task, one event at a
    /// time, in the order the engine reported them; a panic is caught and
    /// the next event still delivered.
    fn after_commit<'a>(&'a self, event: &'a Committed) -> HookFuture<'a, ()> {
        let _ = event;
        Box::pin(std::future::ready(()))
    }
}

/// A before-send hook's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Send it as it is.
    Allow,
    /// Send it with this body instead (checked against the body limit
    /// again).
    Replace(Body),
    /// Refuse it: nothing is stored, and the sender gets
    /// [`Error::Refused`](crate::Error::Refused) with this code (lowercase
    /// snake_case, 1 to 64 characters; any other code is answered as
    /// [`REFUSED`]) and message.
    Refuse {
        /// The machine-readable code.
        code: String,
        /// The text shown to the sender.
        message: String,
    },
    /// The hook could not decide (a service behind it is down): the engine
    /// does what [`HookConfig::on_timeout`] says, as for a time-out.
    NoAnswer,
}

impl Verdict {
    /// A [`Verdict::Refuse`].
    pub fn refuse(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Refuse {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// The code of a refusal whose hook answered a code that is not lowercase
/// snake_case of 1 to 64 characters.
pub const REFUSED: &str = "refused";

/// The code of a refusal because the before-send hook did not answer in
/// time (or answered [`Verdict::NoAnswer`]) under [`OnTimeout::Refuse`].
pub const HOOK_UNAVAILABLE: &str = "hook_unavailable";

/// The longest refusal message kept, in characters; the rest is cut.
pub const MAX_REFUSAL_MESSAGE: usize = 1024;

/// Whether `code` may be a refusal's code: lowercase snake_case (`a-z`,
/// `0-9`, `_`, starting with a letter), 1 to 64 characters.
pub fn is_valid_code(code: &str) -> bool {
    let mut chars = code.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && code.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// What the engine does when the before-send hook does not answer in time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnTimeout {
    /// Refuse the send with code [`HOOK_UNAVAILABLE`].
    #[default]
    Refuse,
    /// Send it as it is.
    Allow,
}

/// Hook settings (in [`Config::hooks`](crate::Config::hooks)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookConfig {
    /// How long a send waits for [`Hooks::before_send`].
    pub send_timeout: Duration,
    /// What happens when it does not answer in time.
    pub on_timeout: OnTimeout,
}

impl Default for HookConfig {
    fn default() -> Self {
        Self {
            send_timeout: Duration::from_secs(2),
            on_timeout: OnTimeout::Refuse,
        }
    }
}

/// One committed event, as [`Hooks::after_commit`] hears of it: each event
/// once, whatever the number of feeds it was appended to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Committed {
    /// The one user whose feed holds it, for events of one user: the reader
    /// of a `read`, the owner told of a `join_request`, the user told of a
    /// `contact`. `None` for the events of a conversation or a group
    /// (`message`, `edit`, `delete`, `reaction`, `member`), which every
    /// participant's feed holds.
    pub user: Option<UserId>,
    /// When it was committed.
    pub ts: Timestamp,
    /// The event, as feeds store it.
    pub event: Event,
    /// For a `message` or an `edit`: the message as committed.
    pub message: Option<Message>,
}

impl Committed {
    /// Whether `event` belongs to a conversation or a group (and so to
    /// every participant's feed) rather than to one user.
    pub fn is_shared(event: &Event) -> bool {
        match event {
            Event::Message { .. }
            | Event::Edit { .. }
            | Event::Delete { .. }
            | Event::Reaction { .. }
            | Event::Member { .. } => true,
            Event::Read { .. } | Event::JoinRequest { .. } | Event::Contact { .. } => false,
        }
    }

    /// The events of one store write, each once: `(user, ts, event)` as
    /// appended to feeds, a shared event reported once however many feeds
    /// got it.
    pub fn once<'a>(
        appended: impl IntoIterator<Item = (&'a UserId, Timestamp, &'a Event)>,
    ) -> Vec<Self> {
        let mut out: Vec<Self> = Vec::new();
        for (user, ts, event) in appended {
            let shared = Self::is_shared(event);
            if shared && out.iter().any(|c| c.user.is_none() && c.event == *event) {
                continue;
            }
            out.push(Self {
                user: (!shared).then(|| user.clone()),
                ts,
                event: event.clone(),
                message: None,
            });
        }
        out
    }
}
