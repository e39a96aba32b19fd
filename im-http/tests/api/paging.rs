//! Paging over HTTP: contacts, group members and the conversation list
//! answer pages with `has_more` and `next`, and `?after=<next>` goes on.

use serde_json::{Value, json};

use crate::common::{Client, Server};

/// Every item of a list, `limit` a page, following `next`; checks that a
/// page says `has_more` exactly when `next` is set.
async fn walk(c: &Client, path: &str, key: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..2000 {
        let query = after
            .as_ref()
            .map_or(String::new(), |a| format!("&after={a}"));
        let r = c.get(&format!("{path}?limit={limit}{query}")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let page = r.json();
        let items = page[key].as_array().unwrap();
        assert!(items.len() <= limit);
        out.extend(items.iter().cloned());
        match page["next"].as_str() {
            Some(next) => {
                assert_eq!(page["has_more"], true);
                assert_eq!(items.len(), limit, "only the last page is short");
                after = Some(next.replace(':', "%3A"));
            }
            None => {
                assert_eq!(page["has_more"], false);
                return out;
            }
        }
    }
    panic!("{path} never ends");
}

fn ids(items: &[Value]) -> Vec<&str> {
    items.iter().map(|i| i["id"].as_str().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_group_pages_its_members_by_id() {
    let s = Server::start_with(|e, _| e.limits.group_members = 2000).await;
    let [alice] = s.users(["alice"]).await;
    assert_eq!(alice.put("/v1/groups/g", json!({})).await.status, 201);
    let admin = s.admin();
    let mut want = vec!["alice".to_string()];
    for i in 0..1050 {
        let u = format!("u{i:04}");
        assert_eq!(
            admin.put(&format!("/v1/users/{u}"), json!({})).await.status,
            201
        );
        let r = alice
            .put(&format!("/v1/groups/g/members/{u}"), json!(null))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        want.push(u);
    }
    want.sort();

    let first = alice.get("/v1/groups/g/members").await.json();
    assert_eq!(
        first["members"].as_array().unwrap().len(),
        100,
        "default page"
    );
    assert_eq!(
        (&first["has_more"], &first["next"]),
        (&json!(true), &json!(want[99]))
    );
    let all = walk(&alice, "/v1/groups/g/members", "members", 1000).await;
    assert_eq!(ids(&all), want, "every member once, by id, in two pages");
    alice
        .get("/v1/groups/g/members?limit=1001")
        .await
        .assert_error(400, "invalid_request");
    alice
        .get("/v1/groups/g/members?after=a%20b")
        .await
        .assert_error(400, "invalid_request");
    let r = alice
        .get(&format!("/v1/groups/g/members?after={}", want[1049]))
        .await
        .json();
    assert_eq!(
        (r["members"].as_array().unwrap().len(), &r["has_more"]),
        (1, &json!(false))
    );
    assert_eq!(r["next"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_and_conversations_page_by_time_with_cursors() {
    let s = Server::start().await;
    let [alice, ..] = s
        .users(["alice", "bob", "carol", "dave", "erin", "fay"])
        .await;
    for u in ["bob", "carol", "dave", "erin", "fay"] {
        alice.put(&format!("/v1/contacts/{u}"), json!(null)).await;
        let r = alice
            .send(&format!("dm:alice:{u}"), json!({"body": {"to": u}}))
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let whole = alice.get("/v1/contacts").await.json();
    assert_eq!(whole["has_more"], false);
    let whole = whole["contacts"].as_array().unwrap().clone();
    assert_eq!(
        ids(&whole),
        ["fay", "erin", "dave", "carol", "bob"],
        "newest first"
    );
    assert_eq!(walk(&alice, "/v1/contacts", "contacts", 2).await, whole);

    let list = alice.get("/v1/conversations").await.json()["conversations"].clone();
    let paged = walk(&alice, "/v1/conversations", "conversations", 2).await;
    assert_eq!(Value::from(paged), list);
    assert_eq!(list[0]["with"], "fay", "most recent first");

    alice
        .get("/v1/contacts?after=bob")
        .await
        .assert_error(400, "invalid_request");
    alice
        .get("/v1/conversations?after=1%3Anope")
        .await
        .assert_error(400, "invalid_request");
    alice
        .get("/v1/contacts?limit=0")
        .await
        .assert_error(400, "invalid_request");
}
