//! The conformance suite every store runs. For tests only: no stability
//! promise.
//!
//! A store crate implements [`StoreFactory`] for a small type of its own and
//! expands [`store_conformance_tests!`](crate::store_conformance_tests) once:
//!
//! ```ignore
//! struct Sled;
//! impl im_engine::testing::StoreFactory for Sled { /* open, reopen */ }
//! im_engine::store_conformance_tests!(Sled);
//! ```
//!
//! That gives one test per case of [`conformance`] and [`accounts`], the
//! model-based property test of [`model`], the subscription property test
//! of [`subscription`] and the store-level comparison with `MemoryStore` of [`comparison`],
//! each against fresh stores from the factory.
//!
//! `PROPTEST_CASES` sets how many cases the property tests run (default in
//! [`cases`]).

pub mod accounts;
pub mod comparison;
pub mod conformance;
pub mod export;
pub mod firehose_cases;
mod hook_cases;
pub mod model;
pub mod paging;
pub mod rooms;
pub mod signals;
pub mod state_machine;
pub mod subscription;

use std::future::Future;

use crate::Store;

/// Opens fresh stores for the suite, and reopens their data.
pub trait StoreFactory: 'static {
    /// The store under test.
    type Store: Store;
    /// What keeps a store's data alive between `open` and `reopen` (a
    /// temporary directory, a key prefix); dropped at the end of a test.
    type Data: Send + 'static;

    /// A new, empty store with its own data.
    fn open() -> impl Future<Output = (Self::Store, Self::Data)> + Send;

    /// Closes `store` and opens the same data again, as a restarted process
    /// would (for a memory store: returns it as it is).
    fn reopen(store: Self::Store, data: &Self::Data) -> impl Future<Output = Self::Store> + Send;

    /// Checks what only the store can see of itself (what it keeps in
    /// memory against what it stored, say); the suite calls it after every
    /// step of its property tests. Panics on a finding.
    fn check(store: &Self::Store) {
        let _ = store;
    }
}

/// [`MemoryStore`](crate::MemoryStore) for the suite and the fuzz targets;
/// its `reopen` hands the store back as it is.
#[derive(Debug)]
pub struct Memory;

impl StoreFactory for Memory {
    type Store = crate::MemoryStore;
    type Data = ();

    async fn open() -> (crate::MemoryStore, ()) {
        (crate::MemoryStore::new(), ())
    }

    async fn reopen(store: crate::MemoryStore, (): &()) -> crate::MemoryStore {
        store
    }
}

/// How many cases a property test runs: `PROPTEST_CASES`, or `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Expands into one test per conformance case against the factory `$f`.
#[macro_export]
macro_rules! store_conformance_tests {
    ($f:ty) => {
        $crate::store_conformance_tests!(@async $f, accounts;
            passwords_are_set_and_checked,
            a_field_patch_keeps_the_password,
            private_fields_are_shown_to_the_user_and_admins,
        );
        $crate::store_conformance_tests!(@async $f, conformance;
            users_are_created_by_admins_and_merged,
            direct_messages_are_numbered_and_paged,
            client_id_makes_sends_idempotent,
            group_policy_and_owner_rules,
            unread_counts_follow_read_cursors,
            conversation_list_is_ordered_by_activity,
            feeds_reference_each_message_once,
            cursors_from_other_stores_or_trimmed_feeds_reset,
            feeds_drop_events_older_than_the_retention_age,
            concurrent_sends_get_dense_seqs,
            membership_changes_are_ordered_with_sends,
            blocks_and_bans_are_decided_at_the_commit,
            an_erased_users_suspension_goes_with_it,
            contacts_linked_in_one_millisecond_list_newest_first,
            a_deleted_body_is_nowhere,
            live_stream_switches_from_replay_without_gap,
            everything_survives_reopen,
            a_refused_send_stores_nothing_and_answers_the_hooks_code,
            a_rewritten_body_is_what_history_shows,
            a_send_hook_out_of_time_refuses_or_allows_as_configured,
            after_commit_never_delays_a_send_and_hears_each_event_once,
        );
        $crate::store_conformance_tests!(@async $f, firehose_cases;
            the_firehose_holds_each_event_once,
            the_live_firehose_hears_new_events,
            the_firehose_and_acks_survive_reopen,
        );
        $crate::store_conformance_tests!(@async $f, rooms;
            room_messages_are_stored_once_and_read_by_members,
            rooms_are_in_the_list_with_unread,
            room_messages_change_in_place,
            room_limits_and_policy_hold,
            room_members_page_by_id,
        );
        $crate::store_conformance_tests!(@signals $f;
            followers_follow_contact_changes,
            typing_reaches_the_other_participants,
            receipts_reach_the_other_participants,
            reads_list_every_participant,
            presence_reaches_followers_after_the_grace,
            presence_skips_whom_the_user_blocks,
            presence_survives_an_abandoned_connect,
        );

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn random_writes_read_back_like_memory_store() {
            $crate::testing::comparison::random_writes_read_back_like_memory_store::<$f>().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn export_and_import_round_trip() {
            $crate::testing::export::export_and_import_round_trip::<$f>().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn lists_page_with_cursors() {
            $crate::testing::paging::lists_page_with_cursors::<$f>().await;
        }

        #[test]
        fn model_based_property_test() {
            $crate::testing::state_machine::run::<$f>();
        }

        #[test]
        fn subscriptions_see_each_event_after_their_cursor_once() {
            $crate::testing::subscription::run::<$f>();
        }
    };
    (@signals $f:ty; $($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::testing::signals::$case::<$f>().await;
            }
        )*
    };
    (@async $f:ty, $module:ident; $($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::testing::$module::$case::<$f>().await;
            }
        )*
    };
}
