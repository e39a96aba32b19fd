//! Numbers in paths and query strings: one rule everywhere (plain digits,
//! no sign, no leading zero, within u64), and no wrapping at the top.

use hyper::Method;
use serde_json::json;

use crate::common::Server;

#[tokio::test]
async fn history_after_the_largest_seq_is_empty_not_the_whole_history() {
    let s = Server::start().await;
    let [alice, bob] = s.users(["alice", "bob"]).await;
    for i in 1..=3 {
        assert_eq!(
            alice.send("dm:alice:bob", json!({"n": i})).await.status,
            201
        );
    }
    let base = "/v1/conversations/dm:alice:bob/messages";
    let r = bob.get(&format!("{base}?after=18446744073709551615")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"messages": [], "has_more": false}));
    let r = bob
        .get(&format!("{base}?after=18446744073709551614&limit=500"))
        .await;
    assert_eq!(r.json(), json!({"messages": [], "has_more": false}));
    // One past u64 is no number at all.
    bob.get(&format!("{base}?after=18446744073709551616"))
        .await
        .assert_error(400, "invalid_request");
    bob.get(&format!("{base}/18446744073709551615"))
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn every_number_is_plain_digits_in_paths_and_queries_alike() {
    let s = Server::start().await;
    let [alice, bob] = s.users(["alice", "bob"]).await;
    for i in 1..=3 {
        assert_eq!(
            alice.send("dm:alice:bob", json!({"n": i})).await.status,
            201
        );
    }
    let base = "/v1/conversations/dm:alice:bob/messages";
    // The spellings a path seq used to accept and a query refused, or the
    // other way round (`%2B` is a `+` that survives form decoding).
    for seq in ["+1", "%2B1", "01", "00001", "1.0", "%201"] {
        bob.get(&format!("{base}/{seq}"))
            .await
            .assert_error(400, "invalid_request");
    }
    for q in [
        "?limit=%2B2",
        "?limit=+2",
        "?limit=02",
        "?after=%2B1",
        "?after=01",
        "?before=%2B3",
        "?before=003",
    ] {
        bob.get(&format!("{base}{q}"))
            .await
            .assert_error(400, "invalid_request");
    }
    for q in ["?limit=%2B5", "?limit=05"] {
        bob.get(&format!("/v1/conversations{q}"))
            .await
            .assert_error(400, "invalid_request");
    }
    for q in ["?wait=%2B1", "?wait=01", "?limit=%2B5", "?limit=05"] {
        bob.request(Method::GET, &format!("/v1/events{q}"))
            .header("accept", "application/json")
            .send()
            .await
            .assert_error(400, "invalid_request");
    }
    // The one spelling of each still works, 0 included.
    assert_eq!(bob.get(&format!("{base}/1")).await.json()["seq"], 1);
    bob.get(&format!("{base}/0"))
        .await
        .assert_error(404, "not_found");
    let r = bob.get(&format!("{base}?after=0&limit=2")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["messages"].as_array().unwrap().len(), 2);
    let r = bob
        .request(Method::GET, "/v1/events?after=0&wait=0&limit=10")
        .header("accept", "application/json")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}
