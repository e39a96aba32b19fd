//! The export of a whole store, for admins (see [`crate::store::export`]).

use futures_core::Stream;

use crate::engine::{Actor, Engine};
use crate::error::{Error, StoreError};
use crate::policy::{self, Action};
use crate::store::Store;
use crate::store::export::{Record, lines, next};

impl<S: Store> Engine<S> {
    /// Every record of the store as an export's lines: the format line,
    /// [`Store::export`]'s records, and the end line. For admins (policy rule 7). The
    /// stream holds a handle to the engine and reads as it is polled.
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] for anyone but an admin; the stream yields the
    /// store's errors.
    pub fn export(
        &self,
        actor: &Actor,
    ) -> Result<impl Stream<Item = Result<Record, StoreError>> + Send + 'static, Error> {
        policy::check(actor, Action::Export)?;
        let engine = self.clone();
        Ok(async_stream::stream! {
            let mut lines = std::pin::pin!(lines(engine.store()));
            while let Some(line) = next(&mut lines).await {
                yield line;
            }
        })
    }
}
