use serde_json::json;

use crate::common::Server;

#[tokio::test]
async fn contacts_are_added_listed_newest_first_and_removed_idempotently() {
    let s = Server::start().await;
    let [alice, _bob, _carol] = s.users(["alice", "bob", "carol"]).await;

    let r = alice.put("/v1/contacts/bob", json!(null)).await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"ok": true})),
        "{}",
        r.text()
    );
    let first = alice.get("/v1/contacts").await.json();
    // Adding again changes nothing, not even `since`.
    assert_eq!(alice.put("/v1/contacts/bob", json!(null)).await.status, 200);
    assert_eq!(alice.get("/v1/contacts").await.json(), first);

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(
        alice.put("/v1/contacts/carol", json!(null)).await.status,
        200
    );
    let list = alice.get("/v1/contacts").await.json();
    let list = list["contacts"].as_array().unwrap();
    let ids: Vec<_> = list.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["carol", "bob"]);
    assert_eq!(list[0]["online"], false);
    assert!(list[0]["since"].as_u64() > list[1]["since"].as_u64());

    for _ in 0..2 {
        let r = alice.delete("/v1/contacts/bob").await;
        assert_eq!((r.status, r.json()), (200, json!({"ok": true})));
    }
    let list = alice.get("/v1/contacts").await.json();
    assert_eq!(list["contacts"].as_array().unwrap().len(), 1);

    alice
        .put("/v1/contacts/nobody", json!(null))
        .await
        .assert_error(404, "not_found");
    alice
        .delete("/v1/contacts/nobody")
        .await
        .assert_error(404, "not_found");
    alice
        .put("/v1/contacts/bad%20id", json!(null))
        .await
        .assert_error(400, "invalid_id");
    alice
        .put("/v1/contacts/alice", json!(null))
        .await
        .assert_error(400, "invalid_request");
    // A caller that is not a user yet has no contacts to read.
    s.client("ghost")
        .get("/v1/contacts")
        .await
        .assert_error(404, "not_found");
}
