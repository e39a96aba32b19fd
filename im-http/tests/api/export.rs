//! `GET /v1/admin/export` and `im-http import` across stores: a store
//! exported over HTTP while the server runs, imported into another kind,
//! answers the same conversation lists, histories, unread counts and
//! profiles, and exports the same lines.

use hyper::Method;
use im_engine::Store;
use im_engine::store::export::{Importer, Record, is_empty};
use serde_json::{Value, json};

use crate::common::{Client, Server};

/// Users, profiles, contacts, a group, messages edited, deleted, reacted
/// to and answered, and read cursors, written over HTTP.
pub(crate) async fn populate<S: Store>(s: &Server<S>) {
    let [alice, bob, carol] = s.users(["alice", "bob", "carol"]).await;
    let r = alice
        .put(
            "/v1/users/alice",
            json!({"fields": {"name": "Alice", "_phone": "1"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    alice.put("/v1/contacts/bob", json!(null)).await;
    alice.put("/v1/contacts/carol", json!(null)).await;
    bob.put("/v1/contacts/alice", json!(null)).await;
    let r = alice
        .put(
            "/v1/groups/g",
            json!({"fields": {"topic": "t"}, "join": "open"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    for (c, u) in [(&bob, "bob"), (&carol, "carol")] {
        c.put(&format!("/v1/groups/g/members/{u}"), json!(null))
            .await;
    }
    for i in 1..=4 {
        let body = json!({"body": {"n": i}, "client_id": format!("c{i}")});
        assert_eq!(
            alice
                .post("/v1/conversations/dm:alice:bob/messages", body)
                .await
                .status,
            201
        );
        let body = json!({"body": {"g": i}, "reply_to": 1});
        let sent = if i == 1 {
            json!({"body": {"g": 1}})
        } else {
            body
        };
        assert_eq!(
            carol
                .post("/v1/conversations/group:g/messages", sent)
                .await
                .status,
            201
        );
    }
    let m = "/v1/conversations/dm:alice:bob/messages";
    let r = alice
        .request(Method::PATCH, &format!("{m}/2"))
        .json(&json!({"body": {"e": 1}}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(alice.delete(&format!("{m}/3")).await.status, 200);
    assert_eq!(
        bob.put(&format!("{m}/1/reactions/%F0%9F%91%8D"), json!(null))
            .await
            .status,
        200
    );
    bob.post("/v1/conversations/dm:alice:bob/read", json!({"seq": 2}))
        .await;
    bob.post("/v1/conversations/group:g/read", json!({"seq": 1}))
        .await;
}

/// What the users see: profiles, contacts, conversation lists with unread
/// counts, every history, the group and its members.
pub(crate) async fn views<S: Store>(s: &Server<S>) -> Vec<Value> {
    let mut out = Vec::new();
    for u in ["alice", "bob", "carol"] {
        let c = s.client(u);
        for path in [
            format!("/v1/users/{u}"),
            "/v1/contacts".into(),
            "/v1/conversations".into(),
        ] {
            out.push(json!({path.clone(): ok(&c, &path).await}));
        }
        let list = ok(&c, "/v1/conversations").await;
        for conv in list["conversations"].as_array().unwrap() {
            let path = format!(
                "/v1/conversations/{}/messages?limit=500",
                conv["id"].as_str().unwrap()
            );
            out.push(json!({path.clone(): ok(&c, &path).await}));
        }
    }
    for path in ["/v1/groups/g", "/v1/groups/g/members"] {
        out.push(json!({path: ok(&s.admin(), path).await}));
    }
    out
}

async fn ok(c: &Client, path: &str) -> Value {
    let r = c.get(path).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()
}

/// The export over HTTP, as text.
pub(crate) async fn export<S: Store>(s: &Server<S>) -> String {
    let r = s.admin().get("/v1/admin/export").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/jsonl"));
    r.text()
}

/// Loads an export's text into an empty store, as `im-http import` does.
pub(crate) async fn import<S: Store>(store: &S, text: &str) -> u64 {
    assert!(is_empty(store).await.map_err(Into::into).unwrap());
    let mut importer = Importer::new(store);
    for line in text.lines() {
        let record: Record = serde_json::from_str(line).unwrap();
        importer.record(record).await.unwrap();
    }
    importer.finish().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_is_for_admins_and_streams_json_lines() {
    let s = Server::start().await;
    populate(&s).await;
    s.client("alice")
        .get("/v1/admin/export")
        .await
        .assert_error(403, "forbidden");
    s.anonymous()
        .get("/v1/admin/export")
        .await
        .assert_error(401, "unauthorized");
    let text = export(&s).await;
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines[0],
        json!({"format": {"format": "im-export", "version": 1}})
    );
    let last = lines.last().unwrap();
    assert_eq!(last, &json!({"end": {"records": lines.len() - 2}}));
    let deleted = lines
        .iter()
        .find(|l| l["message"]["seq"] == 3 && l["message"]["conversation"] == "dm:alice:bob")
        .unwrap();
    assert_eq!(
        deleted["message"]["body"],
        Value::Null,
        "an erased body is not exported"
    );
    assert!(deleted["message"]["deleted_at"].is_u64());
    assert!(!text.contains("\"body\":{\"n\":3}"), "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l["message"]["reactions"]["👍"] == json!(["bob"]))
    );
}

#[cfg(all(feature = "sled", feature = "redis"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_trip_from_sled_into_redis_and_back_answers_the_same() {
    use im_store_redis::testing::{shared_url, skip, unique_prefix};
    use im_store_redis::{RedisConfig, RedisStore};
    if skip() {
        return;
    }
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let sled = Server::start_on(crate::sled::open(dirs[0].path()).await, |_, _| {}).await;
    populate(&sled).await;
    let (want, first) = (views(&sled).await, export(&sled).await);

    let redis = RedisStore::open(RedisConfig::new(shared_url()).prefix(unique_prefix()))
        .await
        .unwrap();
    let n = import(&redis, &first).await;
    assert_eq!(n as usize, first.lines().count() - 2);
    let redis = Server::start_on(redis, |_, _| {}).await;
    assert_eq!(views(&redis).await, want, "Redis answers as sled did");
    let second = export(&redis).await;
    assert_eq!(second, first, "Redis exports the same lines");

    let back = crate::sled::open(dirs[1].path()).await;
    import(&back, &second).await;
    let back = Server::start_on(back, |_, _| {}).await;
    assert_eq!(views(&back).await, want, "and sled again");
    assert_eq!(export(&back).await, first);

    // The stores go on from where they were: the next seq, the dedup of a
    // repeated client id, unread counts.
    let alice = back.client("alice");
    let again = json!({"body": {"n": 1}, "client_id": "c1"});
    let r = alice
        .post("/v1/conversations/dm:alice:bob/messages", again)
        .await;
    assert_eq!(
        (r.status, r.json()["seq"].as_u64()),
        (200, Some(1)),
        "{}",
        r.text()
    );
    let r = alice
        .post(
            "/v1/conversations/dm:alice:bob/messages",
            json!({"body": {}}),
        )
        .await;
    assert_eq!(r.json()["seq"], 5);
    let list = ok(&back.client("bob"), "/v1/conversations").await;
    assert_eq!(list["conversations"][0]["unread"], 3, "{list}");
}

#[cfg(all(feature = "cli", feature = "sled"))]
#[test]
fn the_cli_exports_a_stopped_store_and_imports_into_an_empty_one() {
    use crate::binary::{Serve, im_http};

    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let store = |i: usize| format!("sled:{}", dirs[i].path().display());
    let server = Serve::start(&["--store", &store(0), "--secret", "s"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = server.client(&crate::binary::token(&["root", "--admin", "--secret", "s"]));
    let over_http = rt.block_on(async {
        let r = client
            .put("/v1/users/alice", json!({"fields": {"name": "A"}}))
            .await;
        assert_eq!(r.status, 201);
        client.get("/v1/admin/export").await.text()
    });
    let busy = im_http(&["export", "--store", &store(0)]).output().unwrap();
    assert!(!busy.status.success());
    let said = String::from_utf8_lossy(&busy.stderr);
    assert!(said.contains("GET /v1/admin/export"), "{said}");
    server.stop();

    let file = dirs[1].path().join("export.jsonl");
    let out = im_http(&["export", "--store", &store(0), "-o", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), over_http);
    let target = format!("sled:{}", dirs[1].path().join("copy").display());
    let import = |target: &str| {
        im_http(&["import", "--store", target, file.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let out = import(&target);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 records"));
    let out = im_http(&["export", "--store", &target]).output().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        over_http,
        "stdout by default"
    );
    let again = import(&target);
    assert!(!again.status.success());
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(said.contains("not empty"), "{said}");
    std::fs::write(&file, "{\"user\": 1}\n").unwrap();
    let bad = import(&format!("sled:{}", dirs[1].path().join("other").display()));
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && said.contains("line 1"), "{said}");
}
