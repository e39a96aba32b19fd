//! The model-based property test: random command sequences over a few users
//! and groups, applied to the engine over a store and to the [`Model`],
//! comparing every answer and, after every step, every user's conversation
//! list (unread counts, order), feed and every conversation's history.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest};

use super::model::{MODEL_EPOCH, Model};
use super::{StoreFactory, cases};
use crate::command::{Command, Outcome};
use crate::data::Epoch;
use crate::engine::{Actor, Clock, Config, Engine, Limits, Retention};
use crate::feed::{Cursor, Start};
use crate::{
    Body, Committed, ConversationId, ErrorKind, Event, GroupId, HistoryQuery, HookFuture, Hooks,
    JoinPolicy, ListQuery, Password, SendRequest, Store, Timestamp, UserId,
};

/// The users commands name; `u9` is never created.
const USERS: [&str; 5] = ["u0", "u1", "u2", "u3", "u9"];
const GROUPS: [&str; 2] = ["g0", "g1"];
/// The rooms commands name; `g1` is also a group's, whose ids rooms share.
const ROOMS: [&str; 3] = ["r0", "r1", "g1"];

/// Small limits, so that every limit is hit often.
pub fn limits() -> Limits {
    Limits {
        body_bytes: 32,
        fields: 3,
        field_bytes: 8,
        group_members: 3,
        room_members: 3,
        rooms_per_user: 2,
        reaction_keys: 2,
        page: 4,
        events_page: 1000,
    }
}

/// Events kept per feed: small, so trimming and `reset` happen.
pub const KEEP: u64 = 6;

fn uid(s: &str) -> UserId {
    UserId::new(s).expect("valid test id")
}

fn root() -> Actor {
    Actor::admin(uid("root"))
}

/// What every sequence starts from: three users, and an open group of u0's.
fn setup() -> Vec<(Actor, Command)> {
    let mut steps: Vec<_> = ["u0", "u1", "u2"]
        .map(|u| {
            (
                root(),
                Command::PutUser {
                    id: uid(u),
                    fields: Default::default(),
                },
            )
        })
        .into();
    let g0 = GroupId::new("g0").expect("valid test id");
    steps.push((
        Actor::user(uid("u0")),
        Command::PutGroup {
            id: g0,
            fields: Default::default(),
            join: Some(JoinPolicy::Open),
            owner: None,
        },
    ));
    steps
}

/// One step of a sequence.
#[derive(Debug, Clone)]
pub enum Transition {
    /// Run a command.
    Do(Actor, Command),
    /// Let time pass.
    Tick(u64),
    /// Close the store and open its data again.
    Reopen,
}

/// The model and its answer to the last command.
#[derive(Debug, Clone)]
pub struct State {
    /// The model.
    pub model: Model,
    /// What the model answered to the last [`Transition::Do`].
    pub last: Option<Result<Outcome, ErrorKind>>,
}

/// The reference side of the state machine.
#[derive(Debug)]
pub struct Reference;

fn user() -> impl Strategy<Value = UserId> + Clone {
    prop::sample::select(USERS.to_vec()).prop_map(uid)
}

fn group() -> impl Strategy<Value = GroupId> + Clone {
    prop::sample::select(GROUPS.to_vec()).prop_map(|g| GroupId::new(g).expect("valid test id"))
}

fn room() -> impl Strategy<Value = GroupId> + Clone {
    prop::sample::select(ROOMS.to_vec()).prop_map(|g| GroupId::new(g).expect("valid test id"))
}

fn actor() -> impl Strategy<Value = Actor> {
    prop_oneof![6 => user().prop_map(Actor::user), 1 => Just(root())]
}

fn conversation() -> impl Strategy<Value = ConversationId> {
    prop_oneof![
        3 => (user(), user()).prop_filter_map("two users", |(a, b)| ConversationId::direct(a, b).ok()),
        2 => group().prop_map(ConversationId::group),
        2 => room().prop_map(ConversationId::room),
    ]
}

fn patch() -> impl Strategy<Value = crate::FieldPatch> {
    let name = prop::sample::select(vec!["name", "bio", "x", "_p", ""]).prop_map(String::from);
    let value = prop::option::of(
        prop::sample::select(vec!["a", "bb", "much-too-long"]).prop_map(String::from),
    );
    prop::collection::btree_map(name, value, 0..3)
}

/// Two passwords and one too short. Each use costs an Argon2 hash or two,
/// so they come seldom.
fn password() -> impl Strategy<Value = Password> {
    prop::sample::select(vec!["password1", "password2", "short"]).prop_map(Password::new)
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        9 => (0..100u32).prop_map(|n| format!(r#"{{"n":{n}}}"#)),
        1 => Just(format!(r#"{{"text":"{}"}}"#, "x".repeat(40))),
    ]
    .prop_map(|json| Body::new(&json, 1024).expect("valid test body"))
}

fn send_request() -> impl Strategy<Value = SendRequest> {
    let client_id =
        prop::option::of(prop::sample::select(vec!["a", "b", ""]).prop_map(String::from));
    let from = prop_oneof![4 => Just(None), 1 => user().prop_map(Some)];
    let reply_to = prop::option::of(0..6u64);
    (body(), client_id, from, reply_to).prop_map(|(body, client_id, from, reply_to)| SendRequest {
        body,
        client_id,
        from,
        reply_to,
    })
}

/// Reaction keys: a few good ones (more than the test's key limit, so the
/// limit is hit), an empty one and one too long.
fn reaction_key() -> impl Strategy<Value = String> {
    let keys = [
        "👍",
        "ok",
        "🎉",
        "",
        "x\n",
        "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk",
    ];
    prop::sample::select(keys.to_vec()).prop_map(String::from)
}

fn start() -> impl Strategy<Value = Start> {
    prop_oneof![
        1 => Just(Start::Live),
        1 => Just(Start::Oldest),
        3 => (0..24u64).prop_map(|pos| Start::After(Cursor { epoch: MODEL_EPOCH, pos })),
        1 => (0..24u64).prop_map(|pos| Start::After(Cursor { epoch: Epoch(1), pos })),
    ]
}

/// A list page: small limits (0 is refused), and cursors of every list's
/// shape, some well formed for the list asked, some not.
fn list_query() -> impl Strategy<Value = ListQuery> {
    let after = prop_oneof![
        2 => Just(None),
        1 => user().prop_map(|u| Some(u.to_string())),
        1 => (0..4u64, 0..3u64, user()).prop_map(|(t, o, u)| Some(format!("{t}:{o}:{u}"))),
        1 => (0..4u64, conversation()).prop_map(|(t, c)| Some(format!("{t}:{c}"))),
    ];
    (after, prop::option::of(0..4usize)).prop_map(|(after, limit)| ListQuery { after, limit })
}

fn command() -> impl Strategy<Value = Command> {
    let seq = || prop::option::of(0..8u64);
    let limit = || prop::option::of(0..6usize);
    prop_oneof![
        2 => (user(), patch()).prop_map(|(id, fields)| Command::PutUser { id, fields }),
        2 => user().prop_map(|id| Command::User { id }),
        1 => (user(), password(), prop::option::of(password()))
            .prop_map(|(id, password, old_password)| Command::SetPassword { id, password, old_password }),
        2 => user().prop_map(|id| Command::Link { id }),
        1 => user().prop_map(|id| Command::Unlink { id }),
        1 => list_query().prop_map(|query| Command::Contacts { query }),
        2 => (group(), patch(), prop::option::of(join_policy()), prop::option::weighted(0.2, user()))
            .prop_map(|(id, fields, join, owner)| Command::PutGroup { id, fields, join, owner }),
        1 => group().prop_map(|id| Command::Group { id }),
        1 => (group(), list_query()).prop_map(|(id, query)| Command::Members { id, query }),
        3 => (group(), user()).prop_map(|(group, user)| Command::Join { group, user }),
        2 => (group(), user()).prop_map(|(group, user)| Command::Leave { group, user }),
        10 => (conversation(), send_request()).prop_map(|(conversation, request)| Command::Send { conversation, request }),
        3 => (conversation(), seq(), seq(), limit()).prop_map(|(conversation, before, after, limit)| Command::History {
            conversation,
            query: HistoryQuery { before, after, limit },
        }),
        1 => (conversation(), 0..6u64).prop_map(|(conversation, seq)| Command::Message { conversation, seq }),
        3 => (conversation(), seq()).prop_map(|(conversation, seq)| Command::MarkRead { conversation, seq }),
        2 => list_query().prop_map(|query| Command::Conversations { query }),
        3 => (start(), 1..8usize).prop_map(|(start, limit)| Command::Feed { start, limit }),
        2 => (conversation(), 0..6u64, body()).prop_map(|(conversation, seq, body)| Command::Edit { conversation, seq, body }),
        2 => (conversation(), 0..6u64).prop_map(|(conversation, seq)| Command::Delete { conversation, seq }),
        3 => (conversation(), 0..6u64, reaction_key(), any::<bool>()).prop_map(|(conversation, seq, key, add)| Command::React { conversation, seq, key, add }),
        1 => (conversation(), 0..6u64).prop_map(|(conversation, seq)| Command::Reactions { conversation, seq }),
        1 => (conversation(), any::<bool>()).prop_map(|(conversation, typing)| Command::Typing { conversation, typing }),
        2 => (conversation(), prop::option::of(user()), limit()).prop_map(|(conversation, after, limit)| Command::Reads { conversation, after, limit }),
        6 => moderation(),
        6 => rooms(),
    ]
}

/// Rooms: creation, reading, members, joins and leaves.
fn rooms() -> impl Strategy<Value = Command> {
    let join = prop::option::of(join_policy());
    prop_oneof![
        2 => (room(), patch(), join, prop::option::of(user()))
            .prop_map(|(id, fields, join, owner)| Command::PutRoom { id, fields, join, owner }),
        1 => room().prop_map(|id| Command::Room { id }),
        1 => (room(), list_query()).prop_map(|(id, query)| Command::RoomMembers { id, query }),
        3 => (room(), user()).prop_map(|(room, user)| Command::JoinRoom { room, user }),
        2 => (room(), user()).prop_map(|(room, user)| Command::LeaveRoom { room, user }),
    ]
}

fn join_policy() -> impl Strategy<Value = JoinPolicy> {
    prop_oneof![
        Just(JoinPolicy::Open),
        Just(JoinPolicy::Invite),
        Just(JoinPolicy::Approval)
    ]
}

/// Join requests, bans, blocks, suspension and erasure.
fn moderation() -> impl Strategy<Value = Command> {
    prop_oneof![
        1 => group().prop_map(|group| Command::Requests { group }),
        1 => (group(), user()).prop_map(|(group, user)| Command::Withdraw { group, user }),
        1 => (group(), user()).prop_map(|(group, user)| Command::Ban { group, user }),
        1 => (group(), user()).prop_map(|(group, user)| Command::Unban { group, user }),
        1 => group().prop_map(|group| Command::Bans { group }),
        2 => user().prop_map(|id| Command::Block { id }),
        2 => user().prop_map(|id| Command::Unblock { id }),
        1 => Just(Command::Blocks),
        1 => (user(), any::<bool>()).prop_map(|(id, suspended)| Command::Suspend { id, suspended }),
        1 => user().prop_map(|id| Command::Erase { id }),
    ]
}

impl ReferenceStateMachine for Reference {
    type State = State;
    type Transition = Transition;

    fn init_state() -> BoxedStrategy<State> {
        let mut model = Model::new(limits(), KEEP);
        for (actor, command) in setup() {
            model
                .apply(&actor, &command)
                .expect("setup succeeds in the model");
        }
        Just(State { model, last: None }).boxed()
    }

    fn transitions(state: &State) -> BoxedStrategy<Transition> {
        // A user's own profile (with private fields, which others must
        // not see) and password: random actors rarely name themselves.
        let own_profile = (user(), patch()).prop_map(|(id, fields)| {
            Transition::Do(Actor::user(id.clone()), Command::PutUser { id, fields })
        });
        let own_password = (user(), password(), prop::option::of(password())).prop_map(
            |(id, password, old_password)| {
                let actor = Actor::user(id.clone());
                let command = Command::SetPassword {
                    id,
                    password,
                    old_password,
                };
                Transition::Do(actor, command)
            },
        );
        let random = prop_oneof![
            30 => (actor(), command()).prop_map(|(a, c)| Transition::Do(a, c)),
            2 => own_profile,
            3 => own_password,
            2 => (0..3u64).prop_map(Transition::Tick),
            1 => Just(Transition::Reopen),
        ];
        // Changes to messages that exist, mostly by their senders: random
        // ones rarely name a message at all.
        let sent = state.model.messages();
        if sent.is_empty() {
            return random.boxed();
        }
        let change = (
            prop::sample::select(sent),
            0..8u8,
            reaction_key(),
            any::<bool>(),
        )
            .prop_map(|((conversation, seq, from), pick, key, add)| {
                let actor = if pick == 0 { root() } else { Actor::user(from) };
                let command = match pick % 4 {
                    0 => Command::Edit {
                        conversation,
                        seq,
                        body: Body::new(r#"{"e":1}"#, 1024).expect("valid test body"),
                    },
                    1 => Command::Delete { conversation, seq },
                    2 => Command::React {
                        conversation,
                        seq,
                        key,
                        add,
                    },
                    _ => Command::Reactions { conversation, seq },
                };
                Transition::Do(actor, command)
            });
        prop_oneof![4 => random, 1 => change].boxed()
    }

    fn apply(mut state: State, transition: &Transition) -> State {
        state.last = None;
        match transition {
            Transition::Do(actor, command) => state.last = Some(state.model.apply(actor, command)),
            Transition::Tick(ms) => state.model.now += ms,
            Transition::Reopen => {}
        }
        state
    }
}

/// A clock the test sets.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// Sets the time.
    pub fn set(&self, now: Timestamp) {
        self.0.store(now, Ordering::SeqCst);
    }

    /// The time `ms` from now (without moving the clock).
    pub fn now_plus(&self, ms: u64) -> Timestamp {
        self.0.load(Ordering::SeqCst) + ms
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.0.load(Ordering::SeqCst)
    }
}

/// An after-commit hook that keeps every event it hears of.
#[derive(Debug, Default)]
pub struct Recorder(Mutex<Vec<Committed>>);

impl Recorder {
    /// Every event heard of since the last call.
    pub fn take(&self) -> Vec<Committed> {
        std::mem::take(&mut *self.0.lock().expect("not poisoned"))
    }
}

impl Hooks for Recorder {
    fn after_commit<'a>(&'a self, event: &'a Committed) -> HookFuture<'a, ()> {
        self.0.lock().expect("not poisoned").push(event.clone());
        Box::pin(std::future::ready(()))
    }
}

/// The engine under test, over a store from `F`.
pub struct System<F: StoreFactory> {
    rt: tokio::runtime::Runtime,
    engine: Option<Engine<F::Store>>,
    data: F::Data,
    clock: Arc<ManualClock>,
    recorder: Arc<Recorder>,
    /// How far the firehose has been read, per partition.
    fired: Vec<u64>,
}

impl<F: StoreFactory> std::fmt::Debug for System<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("System")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

impl<F: StoreFactory> System<F> {
    fn engine(&self) -> &Engine<F::Store> {
        self.engine.as_ref().expect("engine is open")
    }

    fn open(&self, store: F::Store) -> Engine<F::Store> {
        Engine::builder(store)
            .config(engine_config())
            .clock(self.clock.clone())
            .hooks(self.recorder.clone())
            .build()
    }

    /// What the after-commit hook heard of since the last call, as
    /// `(user, ts, event)` in a canonical order, each message event checked
    /// to carry its message.
    fn heard(&self) -> Vec<(Option<UserId>, Timestamp, Event)> {
        self.rt.block_on(self.engine().drain_hooks());
        let mut heard: Vec<_> = self
            .recorder
            .take()
            .into_iter()
            .map(|c| {
                if let Event::Message { conversation, seq } | Event::Edit { conversation, seq } =
                    &c.event
                {
                    let m = c.message.as_ref().expect("a message event carries it");
                    assert_eq!((&m.conversation, m.seq), (conversation, *seq));
                }
                (c.user, c.ts, c.event)
            })
            .collect();
        canonical(&mut heard);
        heard
    }

    /// The firehose's entries after `pos` (every partition, each in its
    /// order), moving `pos` on, as `(user, ts, event)`.
    fn fired_after(&self, pos: &mut [u64]) -> Vec<(Option<UserId>, Timestamp, Event)> {
        let store = self.engine().store();
        let mut out = Vec::new();
        for (part, after) in pos.iter_mut().enumerate() {
            let read = self.rt.block_on(store.firehose(part, *after, usize::MAX));
            let read = read.map_err(Into::into).expect("the firehose reads");
            let mut at = *after;
            for e in read.entries {
                assert_eq!(e.pos, at + 1, "firehose positions are dense");
                at = e.pos;
                out.push((e.user, e.ts, e.event));
            }
            assert_eq!(at, read.head, "the firehose read to its head");
            *after = at;
        }
        out
    }

    fn run(&self, actor: &Actor, command: Command) -> Result<Outcome, ErrorKind> {
        let engine = self.engine();
        let command = to_store_epoch(command, engine.store().epoch());
        let answer = self.rt.block_on(engine.execute(actor, command));
        answer
            .map(|o| to_model_epoch(o, engine.store().epoch()))
            .map_err(|e| e.kind())
    }
}

fn engine_config() -> Config {
    Config {
        limits: limits(),
        retention: Retention {
            events: Some(KEEP),
            age: None,
        },
        // Cheap hashes: the sequences set and check many passwords.
        password_cost: crate::PasswordCost {
            memory_kib: 64,
            passes: 1,
            lanes: 1,
        },
        ..Config::default()
    }
}

/// Cursors in commands name the model's epoch (or `Epoch(1)`, a foreign
/// one); the store has its own.
fn to_store_epoch(command: Command, epoch: Epoch) -> Command {
    match command {
        Command::Feed {
            start: Start::After(c),
            limit,
        } => {
            let foreign = Epoch(epoch.0.wrapping_add(1));
            let epoch = if c.epoch == MODEL_EPOCH {
                epoch
            } else {
                foreign
            };
            Command::Feed {
                start: Start::After(Cursor { epoch, ..c }),
                limit,
            }
        }
        other => other,
    }
}

fn to_model_epoch(outcome: Outcome, epoch: Epoch) -> Outcome {
    let fix = |c: Cursor| Cursor {
        epoch: if c.epoch == epoch {
            MODEL_EPOCH
        } else {
            c.epoch
        },
        ..c
    };
    match outcome {
        Outcome::Feed(mut poll) => {
            poll.next = fix(poll.next);
            for e in &mut poll.events {
                e.cursor = fix(e.cursor);
            }
            Outcome::Feed(poll)
        }
        other => other,
    }
}

/// Sorts events of one step, whose order among themselves the engine and
/// the model need not share.
fn canonical(events: &mut [(Option<UserId>, Timestamp, Event)]) {
    events.sort_by_cached_key(|e| format!("{e:?}"));
}

/// The system side of the state machine, generic over the store factory.
#[derive(Debug)]
pub struct EngineTest<F>(std::marker::PhantomData<F>);

impl<F: StoreFactory> StateMachineTest for EngineTest<F> {
    type SystemUnderTest = System<F>;
    type Reference = Reference;

    fn init_test(state: &State) -> System<F> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let (store, data) = rt.block_on(F::open());
        let mut sys = System {
            rt,
            engine: None,
            data,
            clock: Arc::new(ManualClock::default()),
            recorder: Arc::default(),
            fired: Vec::new(),
        };
        sys.engine = Some(sys.open(store));
        sys.clock.set(1);
        for (actor, command) in setup() {
            sys.run(&actor, command)
                .expect("setup succeeds on the store");
        }
        sys.heard();
        let mut fired = vec![0; Store::firehose_partitions(sys.engine().store())];
        let mut setup = sys.fired_after(&mut fired);
        let mut want = state.model.fired().to_vec();
        canonical(&mut setup);
        canonical(&mut want);
        assert_eq!(setup, want, "the firehose holds the setup's events");
        sys.fired = fired;
        sys.clock.set(state.model.now);
        sys
    }

    fn apply(mut sys: System<F>, state: &State, transition: Transition) -> System<F> {
        sys.clock.set(state.model.now);
        match transition {
            Transition::Do(actor, command) => {
                let got = sys.run(&actor, command.clone());
                let want = state.last.as_ref().expect("the model answered");
                assert_eq!(&got, want, "{actor:?} ran {command:?}");
                // The after-commit hook heard of each event once.
                let mut committed = state.model.committed().to_vec();
                canonical(&mut committed);
                assert_eq!(
                    sys.heard(),
                    committed,
                    "{actor:?} ran {command:?}: the after-commit hook heard"
                );
                // The firehose got the same events, once, after the earlier
                // steps' events.
                let mut pos = std::mem::take(&mut sys.fired);
                let mut fired = sys.fired_after(&mut pos);
                sys.fired = pos;
                canonical(&mut fired);
                assert_eq!(fired, committed, "{actor:?} ran {command:?}: the firehose");
            }
            Transition::Tick(_) => {}
            Transition::Reopen => {
                assert_eq!(sys.heard(), [], "events without a command");
                let engine = sys.engine.take().expect("engine is open");
                let store = engine
                    .try_into_store()
                    .expect("no other engine handle is alive");
                let store = sys.rt.block_on(F::reopen(store, &sys.data));
                let engine = sys.open(store);
                // What a server does when it starts.
                sys.rt
                    .block_on(engine.refresh_suspensions())
                    .expect("suspensions read");
                sys.engine = Some(engine);
            }
        }
        sys
    }

    fn check_invariants(sys: &System<F>, state: &State) {
        F::check(sys.engine().store());
        // The whole firehose, read again from the start (after a reopen
        // too): each committed event once.
        let mut from_start = vec![0; sys.fired.len()];
        let mut fired = sys.fired_after(&mut from_start);
        let mut want = state.model.fired().to_vec();
        canonical(&mut fired);
        canonical(&mut want);
        assert_eq!(fired, want, "the firehose from the start");
        let mut model = state.model.clone();
        let users = USERS.map(uid);
        for (i, u) in users.iter().enumerate() {
            let me = Actor::user(u.clone());
            // The next user's profile: private fields stay hidden.
            let next = users[(i + 1) % users.len()].clone();
            let command = Command::User { id: next };
            let want = model.apply(&me, &command);
            assert_eq!(
                sys.run(&me, command.clone()),
                want,
                "{me:?} ran {command:?}"
            );
            walk_pages(sys, &mut model, &me, |query| Command::Conversations {
                query,
            });
            walk_pages(sys, &mut model, &me, |query| Command::Contacts { query });
            let command = Command::Feed {
                start: Start::Oldest,
                limit: 100,
            };
            let want = model.apply(&me, &command);
            assert_eq!(
                sys.run(&me, command.clone()),
                want,
                "{me:?} ran {command:?}"
            );
        }
        for g in GROUPS.map(|g| GroupId::new(g).expect("valid test id")) {
            walk_pages(sys, &mut model, &root(), |query| Command::Members {
                id: g.clone(),
                query,
            });
        }
        for r in ROOMS.map(|r| GroupId::new(r).expect("valid test id")) {
            walk_pages(sys, &mut model, &root(), |query| Command::RoomMembers {
                id: r.clone(),
                query,
            });
        }
        for conversation in model.conversation_ids() {
            let command = Command::History {
                conversation,
                query: HistoryQuery {
                    limit: Some(4),
                    ..Default::default()
                },
            };
            let want = model.apply(&root(), &command);
            assert_eq!(
                sys.run(&root(), command.clone()),
                want,
                "root ran {command:?}"
            );
        }
    }
}

/// Runs the model-based property test on stores from `F`
/// (`PROPTEST_CASES` cases, default 64, each up to 60 steps).
///
/// # Panics
///
/// With the shrunk failing sequence, when the store disagrees with the model.
pub fn run<F: StoreFactory>() {
    let config = ProptestConfig {
        cases: cases(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config.clone());
    let result = runner.run(
        &Reference::sequential_strategy(1..60),
        |(state, transitions, seen)| {
            EngineTest::<F>::test_sequential(config.clone(), state, transitions, seen);
            Ok(())
        },
    );
    if let Err(e) = result {
        panic!("the store disagrees with the model: {e}");
    }
}

/// Reads a whole list two items a page, following `next`, from the store
/// and the model, and checks every page is the same.
fn walk_pages<F: StoreFactory>(
    sys: &System<F>,
    model: &mut Model,
    actor: &Actor,
    command: impl Fn(ListQuery) -> Command,
) {
    let mut after = None;
    for _ in 0..100 {
        let c = command(ListQuery {
            after: after.take(),
            limit: Some(2),
        });
        let want = model.apply(actor, &c);
        let got = sys.run(actor, c.clone());
        assert_eq!(got, want, "{actor:?} ran {c:?}");
        after = match got {
            Ok(Outcome::Conversations(p)) => p.next,
            Ok(Outcome::Contacts(p)) => p.next,
            Ok(Outcome::Members(p)) => p.next,
            _ => None,
        };
        if after.is_none() {
            return;
        }
    }
    panic!("{actor:?} paged 100 times without reaching the end");
}
