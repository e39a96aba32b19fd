//! A store that stops answering: 503, a generic message, and no panic.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use im_engine::store::{
    Changes, Mark, Marks, MemberUpdate, MessageUpdate, MessageUpdated, Outgoing, Sent, Updated,
};
use im_engine::{
    Contact, ConvEntry, ConversationId, Epoch, Feed, Group, GroupId, Member, MemoryStore, Message,
    Notifier, Presence, Seq, Store, StoreError, Timestamp, User, UserId,
};
use serde_json::json;

use std::time::Duration;

use crate::common::{Frame, Server, Sse, WAIT};

#[derive(Debug, thiserror::Error)]
#[error("the test store is down")]
struct Down;

impl From<Down> for StoreError {
    fn from(e: Down) -> Self {
        StoreError::backend(e)
    }
}

/// A `MemoryStore` that fails every call while `down` is set, and whose
/// sends fail after they were stored while `lose_sends` is set (a store
/// that timed out after its commit point).
struct FlakyStore {
    inner: MemoryStore,
    down: Arc<AtomicBool>,
    lose_sends: Arc<AtomicBool>,
}

impl FlakyStore {
    fn check(&self) -> Result<(), Down> {
        if self.down.load(Ordering::SeqCst) {
            Err(Down)
        } else {
            Ok(())
        }
    }
}

fn never(e: std::convert::Infallible) -> Down {
    match e {}
}

impl Store for FlakyStore {
    type Error = Down;

    fn epoch(&self) -> Epoch {
        self.inner.epoch()
    }
    fn notifier(&self) -> &Notifier {
        self.inner.notifier()
    }
    fn signals(&self) -> &im_engine::SignalBus {
        self.inner.signals()
    }
    fn rooms(&self) -> &im_engine::store::RoomBus {
        self.inner.rooms()
    }
    async fn send(&self, send: &Outgoing) -> Result<Sent, Down> {
        self.check()?;
        let sent = self.inner.send(send).await.map_err(never)?;
        if self.lose_sends.load(Ordering::SeqCst) {
            return Err(Down);
        }
        Ok(sent)
    }
    async fn update_message(&self, update: &MessageUpdate) -> Result<MessageUpdated, Down> {
        self.check()?;
        self.inner.update_message(update).await.map_err(never)
    }
    async fn update_member(&self, update: &MemberUpdate) -> Result<Updated, Down> {
        self.check()?;
        self.inner.update_member(update).await.map_err(never)
    }
    async fn commit(&self, changes: &Changes) -> Result<(), Down> {
        self.check()?;
        self.inner.commit(changes).await.map_err(never)
    }
    async fn user(&self, id: &UserId) -> Result<Option<User>, Down> {
        self.check()?;
        self.inner.user(id).await.map_err(never)
    }
    async fn contact(&self, owner: &UserId, id: &UserId) -> Result<Option<Contact>, Down> {
        self.check()?;
        self.inner.contact(owner, id).await.map_err(never)
    }
    async fn contacts(&self, owner: &UserId) -> Result<Vec<Contact>, Down> {
        self.check()?;
        self.inner.contacts(owner).await.map_err(never)
    }
    async fn followers(&self, user: &UserId) -> Result<Vec<UserId>, Down> {
        self.check()?;
        self.inner.followers(user).await.map_err(never)
    }
    async fn group(&self, id: &GroupId) -> Result<Option<Group>, Down> {
        self.check()?;
        self.inner.group(id).await.map_err(never)
    }
    async fn member(&self, group: &GroupId, user: &UserId) -> Result<Option<Member>, Down> {
        self.check()?;
        self.inner.member(group, user).await.map_err(never)
    }
    async fn members(&self, group: &GroupId) -> Result<Vec<Member>, Down> {
        self.check()?;
        self.inner.members(group).await.map_err(never)
    }
    async fn last_seq(&self, c: &ConversationId) -> Result<Seq, Down> {
        self.check()?;
        self.inner.last_seq(c).await.map_err(never)
    }
    async fn messages(&self, c: &ConversationId, from: Seq, to: Seq) -> Result<Vec<Message>, Down> {
        self.check()?;
        self.inner.messages(c, from, to).await.map_err(never)
    }
    async fn entry(&self, user: &UserId, c: &ConversationId) -> Result<Option<ConvEntry>, Down> {
        self.check()?;
        self.inner.entry(user, c).await.map_err(never)
    }
    async fn entries(&self, user: &UserId) -> Result<Vec<ConvEntry>, Down> {
        self.check()?;
        self.inner.entries(user).await.map_err(never)
    }
    async fn feed(&self, user: &UserId, after: u64, limit: usize) -> Result<Feed, Down> {
        self.check()?;
        self.inner.feed(user, after, limit).await.map_err(never)
    }
    async fn firehose(
        &self,
        part: usize,
        after: u64,
        limit: usize,
    ) -> Result<im_engine::Firehose, Down> {
        self.check()?;
        self.inner.firehose(part, after, limit).await.map_err(never)
    }
    async fn acked(&self, name: &str) -> Result<Option<String>, Down> {
        self.check()?;
        self.inner.acked(name).await.map_err(never)
    }
    async fn set_acked(&self, name: &str, value: &str) -> Result<(), Down> {
        self.check()?;
        self.inner.set_acked(name, value).await.map_err(never)
    }
    async fn set_presence(&self, user: &UserId, online: bool, at: Timestamp) -> Result<(), Down> {
        self.check()?;
        self.inner
            .set_presence(user, online, at)
            .await
            .map_err(never)
    }
    async fn presence(&self, user: &UserId) -> Result<Presence, Down> {
        self.check()?;
        self.inner.presence(user).await.map_err(never)
    }
    async fn marks(&self, set: &Marks) -> Result<Vec<Mark>, Down> {
        self.check()?;
        self.inner.marks(set).await.map_err(never)
    }
    async fn mark(&self, set: &Marks, user: &UserId) -> Result<Option<Mark>, Down> {
        self.check()?;
        self.inner.mark(set, user).await.map_err(never)
    }
    fn export(
        &self,
    ) -> impl futures_util::Stream<Item = Result<im_engine::store::Record, Down>> + Send + '_ {
        use futures_util::StreamExt;
        let down = self.check().err().map(Err);
        futures_util::stream::iter(down).chain(self.inner.export().map(|r| r.map_err(never)))
    }
    async fn ping(&self) -> Result<(), Down> {
        self.check()
    }
    async fn flush(&self) -> Result<(), Down> {
        self.check()
    }
}

#[tokio::test]
async fn a_store_outage_is_503_with_a_generic_message() {
    let down = Arc::new(AtomicBool::new(false));
    let store = FlakyStore {
        inner: MemoryStore::new(),
        down: Arc::clone(&down),
        lose_sends: Arc::default(),
    };
    let s = Server::start_on(store, |_, _| {}).await;
    let [alice, _] = s.users(["alice", "bob"]).await;

    down.store(true, Ordering::SeqCst);
    let r = s.anonymous().get("/healthz").await;
    r.assert_error(503, "unavailable");
    // Not ready while the store is down, but alive: restarting would not help.
    s.anonymous()
        .get("/readyz")
        .await
        .assert_error(503, "unavailable");
    assert_eq!(s.anonymous().get("/livez").await.status, 200);
    let r = alice.send("dm:alice:bob", json!({"text": "hi"})).await;
    r.assert_error(503, "unavailable");
    assert!(!r.text().contains("test store"), "{}", r.text());
    alice
        .get("/v1/users/alice")
        .await
        .assert_error(503, "unavailable");
    let r = alice
        .request(hyper::Method::GET, "/v1/events")
        .header("accept", "application/json")
        .send()
        .await;
    r.assert_error(503, "unavailable");
    s.admin()
        .get("/v1/admin/export")
        .await
        .assert_error(503, "unavailable");
    // Bad input is still the caller's error, not the store's.
    alice
        .get("/v1/users/a%20b")
        .await
        .assert_error(400, "invalid_id");

    down.store(false, Ordering::SeqCst);
    assert_eq!(s.anonymous().get("/healthz").await.status, 200);
    assert_eq!(s.anonymous().get("/readyz").await.status, 200);
    let r = alice.send("dm:alice:bob", json!({"text": "hi"})).await;
    assert_eq!((r.status, r.json()["seq"].clone()), (201, json!(1)));
}

/// What docs/API.md promises: a send answered 503 may have been stored, and
/// a retry with the same `client_id` answers the original, stored once.
#[tokio::test]
async fn a_send_answered_503_may_be_stored_and_its_retry_answers_the_original() {
    let lose_sends = Arc::new(AtomicBool::new(true));
    let store = FlakyStore {
        inner: MemoryStore::new(),
        down: Arc::default(),
        lose_sends: Arc::clone(&lose_sends),
    };
    let s = Server::start_on(store, |_, _| {}).await;
    let [alice, bob] = s.users(["alice", "bob"]).await;
    let path = "/v1/conversations/dm:alice:bob/messages";
    let body = json!({"body": {"text": "hi"}, "client_id": "c-1"});

    alice
        .post(path, body.clone())
        .await
        .assert_error(503, "unavailable");
    lose_sends.store(false, Ordering::SeqCst);
    let r = alice.post(path, body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        (r.json()["seq"].clone(), r.json()["client_id"].clone()),
        (json!(1), json!("c-1"))
    );
    let history = bob.get(path).await.json();
    assert_eq!(
        history["messages"].as_array().unwrap().len(),
        1,
        "{history}"
    );
}

/// A browser's EventSource gives up for good on a 503, so a stream opened
/// during an outage is answered 200 with a `retry:` and a comment, and
/// ended, and the EventSource reconnects by itself.
#[tokio::test]
async fn an_event_stream_opened_during_an_outage_is_told_to_retry() {
    let down = Arc::new(AtomicBool::new(false));
    let store = FlakyStore {
        inner: MemoryStore::new(),
        down: Arc::clone(&down),
        lose_sends: Arc::default(),
    };
    let s = Server::start_on(store, |_, c| c.sse_retry = Duration::from_secs(2)).await;
    s.users(["alice", "bob"]).await;
    down.store(true, Ordering::SeqCst);

    let mut sse = Sse::open(s.addr, "/v1/events", &s.token("bob", false), &[]).await;
    assert_eq!(sse.status, 200, "{}", sse.head);
    assert_eq!(
        sse.header("content-type").as_deref(),
        Some("text/event-stream")
    );
    let Some(Frame::Comment(comment)) = sse.next_frame(WAIT).await else {
        panic!("a comment")
    };
    assert!(comment.contains("unavailable"), "{comment}");
    let retry = sse.retry.expect("a retry: line before the comment");
    assert!((2000..4000).contains(&retry), "{retry}");
    assert_eq!(sse.next_frame(WAIT).await, None);
    assert!(sse.ended, "the stream ends");

    // Once the store is back, the same request is a live stream.
    down.store(false, Ordering::SeqCst);
    let mut sse = Sse::open(s.addr, "/v1/events", &s.token("bob", false), &[]).await;
    assert_eq!(sse.status, 200);
    assert_eq!(sse.next_frame(Duration::from_millis(300)).await, None);
    assert!(!sse.ended);
}
