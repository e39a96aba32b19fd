//! A command whose client leaves before the answer still runs to its end.
//! hyper drops a request's future when its connection closes; a command of
//! several store steps dropped part way would stay half done.

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::common::{Server, eventually};

/// Alice's messages in the group's history, and how many are deleted.
async fn alices(bob: &crate::common::Client) -> (usize, usize) {
    let history = bob
        .get("/v1/conversations/group:club/messages?limit=500")
        .await
        .json();
    let mine: Vec<&Value> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["from"] == "alice")
        .collect();
    let deleted = mine.iter().filter(|m| m["deleted_at"].is_number()).count();
    (mine.len(), deleted)
}

/// On sled, where each message's delete is a durable write, an erase of a
/// user with 300 messages takes long enough to leave in the middle of.
#[tokio::test]
async fn an_erase_whose_client_leaves_still_erases_everything() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_on(crate::sled::open(dir.path()).await, |_, _| {}).await;
    let [alice, bob] = s.users(["alice", "bob"]).await;
    bob.put("/v1/groups/club", json!({})).await;
    bob.put("/v1/groups/club/members/alice", json!(null)).await;
    for i in 0..300 {
        alice.send("group:club", json!({ "n": i })).await;
    }
    assert_eq!(alices(&bob).await, (300, 0));

    let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let request = format!(
        "DELETE /v1/users/alice HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {}\r\n\
         content-length: 0\r\n\r\n",
        s.token("root", true)
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    eventually("the erase to be under way", || async {
        alices(&bob).await.1 > 0
    })
    .await;
    let (_, deleted) = alices(&bob).await;
    assert!(
        deleted < 300,
        "the erase ended before the client left: the test proves nothing"
    );
    drop(conn);

    let admin = s.admin();
    eventually("alice to be erased", || async {
        admin.get("/v1/users/alice").await.status == 404
    })
    .await;
    assert_eq!(alices(&bob).await, (300, 300), "every message is deleted");
    let members = bob.get("/v1/groups/club/members").await.json();
    assert!(
        !members.to_string().contains("alice"),
        "alice left the group: {members}"
    );
}
