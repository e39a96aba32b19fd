//! An erase long enough to act in the middle of: on sled, where each
//! message's delete is a durable write, an erase of a user with 300
//! messages.

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::common::{Client, Server, eventually};

/// Alice's messages in the group's history, and how many are deleted.
async fn alices(bob: &Client) -> (usize, usize) {
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

/// A server on sled where alice has sent 300 messages to bob's group.
async fn alice_with_300_messages(
    dir: &std::path::Path,
) -> (Server<im_store_sled::SledStore>, Client, Client) {
    let s = Server::start_on(crate::sled::open(dir).await, |_, _| {}).await;
    let [alice, bob] = s.users(["alice", "bob"]).await;
    bob.put("/v1/groups/club", json!({})).await;
    bob.put("/v1/groups/club/members/alice", json!(null)).await;
    for i in 0..300 {
        alice.send("group:club", json!({ "n": i })).await;
    }
    assert_eq!(alices(&bob).await, (300, 0));
    (s, alice, bob)
}

/// `DELETE /v1/users/alice` on a connection of its own, once it is under
/// way: alice's first message is blanked, and she is still there.
async fn start_erasing_alice(s: &Server<im_store_sled::SledStore>, bob: &Client) -> TcpStream {
    let mut conn = TcpStream::connect(s.addr).await.unwrap();
    let request = format!(
        "DELETE /v1/users/alice HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {}\r\n\
         content-length: 0\r\n\r\n",
        s.token("root", true)
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    eventually("the erase to be under way", || async {
        alices(bob).await.1 > 0
    })
    .await;
    let (_, deleted) = alices(bob).await;
    assert!(
        deleted < 300,
        "the erase ended before the test could act in its middle"
    );
    conn
}

/// hyper drops a request's future when its connection closes; a command of
/// several store steps dropped part way would stay half done.
#[tokio::test]
async fn an_erase_whose_client_leaves_still_erases_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _alice, bob) = alice_with_300_messages(dir.path()).await;
    let conn = start_erasing_alice(&s, &bob).await;
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

/// The user is suspended while it is erased: what it sends meanwhile, to a
/// conversation the erase already went through, would keep its body.
#[tokio::test]
async fn a_user_being_erased_can_do_nothing_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let (s, alice, bob) = alice_with_300_messages(dir.path()).await;
    let _conn = start_erasing_alice(&s, &bob).await;
    alice
        .send("group:club", json!({ "late": true }))
        .await
        .assert_error(403, "suspended");
    let admin = s.admin();
    eventually("alice to be erased", || async {
        admin.get("/v1/users/alice").await.status == 404
    })
    .await;
    assert_eq!(alices(&bob).await, (300, 300), "nothing of alice's is left");
    // The suspension went with the rest: the id may be created again.
    let again = admin.put("/v1/users/alice", json!({})).await;
    assert_eq!(again.status, 201, "{}", again.text());
    s.client("alice")
        .send("group:club", json!({ "n": "new" }))
        .await
        .assert_error(403, "forbidden");
}
