//! The conformance case of export and import: a store exported, imported
//! into an empty store of the same kind and into a `MemoryStore`, exports
//! the same records and answers the same reads.

use std::collections::BTreeMap;
use std::pin::pin;

use super::StoreFactory;
use super::conformance::{body, conv, fixture, gid, me, root, send, uid};
use crate::store::export::{self, ImportError, Importer, Record};
use crate::{Engine, HistoryQuery, JoinPolicy, ListQuery, MemoryStore, Store, StoreError};

/// Every line of `store`'s export, from the format line to the end line.
pub async fn export_all<S: Store>(store: &S) -> Vec<Record> {
    let mut out = vec![Record::format()];
    let mut records = pin!(store.export());
    while let Some(r) = export::next(&mut records).await {
        out.push(
            r.map_err(Into::<StoreError>::into)
                .expect("the export reads"),
        );
    }
    out.push(Record::End {
        records: out.len() as u64 - 1,
    });
    out
}

/// Loads `records` into `store` as `im-http import` does, each through
/// the text of its line.
///
/// # Errors
///
/// The import's.
pub async fn import_all<S: Store>(store: &S, records: &[Record]) -> Result<u64, ImportError> {
    let empty = export::is_empty(store)
        .await
        .map_err(|e| ImportError::Store(e.into()));
    if !empty? {
        return Err(ImportError::NotEmpty);
    }
    let mut importer = Importer::new(store);
    for r in records {
        // Through the text of a line, as a file holds it.
        let line = serde_json::to_string(r).expect("a record serializes");
        let read: Record = serde_json::from_str(&line).expect("a line reads back");
        assert_eq!(&read, r, "{line}");
        importer.record(read).await?;
    }
    importer.finish().await
}

/// What users see of a store: profiles, contacts, conversation lists,
/// members and every history, as text.
async fn reads<S: Store>(engine: &Engine<S>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for u in ["alice", "bob", "carol"] {
        let a = me(u);
        let user = engine.user(&root(), &uid(u)).await;
        out.insert(format!("{u} profile"), format!("{user:?}"));
        let contacts = engine.contacts(&a, &ListQuery::default()).await;
        out.insert(format!("{u} contacts"), format!("{contacts:?}"));
        let list = engine.conversations(&a, None).await.unwrap();
        for c in &list {
            let page = engine.history(&a, &c.id, HistoryQuery::default()).await;
            out.insert(format!("{u} {}", c.id), format!("{page:?}"));
        }
        out.insert(format!("{u} conversations"), format!("{list:?}"));
    }
    let members = engine
        .members(&root(), &gid("g"), &ListQuery::default())
        .await;
    out.insert("members".into(), format!("{members:?}"));
    for g in ["g", "club"] {
        let requests = engine.requests(&root(), &gid(g)).await;
        out.insert(format!("{g} requests"), format!("{requests:?}"));
        let bans = engine.bans(&root(), &gid(g)).await;
        out.insert(format!("{g} bans"), format!("{bans:?}"));
    }
    for u in ["alice", "bob", "carol", "bo"] {
        let blocks = engine.blocks(&me(u)).await;
        out.insert(format!("{u} blocks"), format!("{blocks:?}"));
        let user = engine.user(&root(), &uid(u)).await;
        out.insert(format!("{u} as admins see it"), format!("{user:?}"));
    }
    let group = engine.group(&root(), &gid("g")).await;
    out.insert("group".into(), format!("{group:?}"));
    out
}

/// An export imported into an empty store (of this kind, and memory)
/// exports the same records and reads the same; a store with data refuses
/// an import; records out of order are refused with their line.
pub async fn export_and_import_round_trip<F: StoreFactory>() {
    let (engine, _data) = fixture::<F>().await;
    let g = gid("g");
    engine
        .put_group(&me("alice"), &g, Default::default(), Some(JoinPolicy::Open))
        .await
        .unwrap();
    engine.join(&me("bob"), &g, &uid("bob")).await.unwrap();
    engine.link(&me("alice"), &uid("bob")).await.unwrap();
    engine.link(&me("bob"), &uid("carol")).await.unwrap();
    for n in 0..4 {
        send(&engine, "alice", "dm:alice:bob", n).await;
        send(&engine, "bob", "group:g", n).await;
    }
    let dm = conv("dm:alice:bob");
    engine.edit(&me("alice"), &dm, 2, body(9)).await.unwrap();
    engine.delete(&me("alice"), &dm, 3).await.unwrap();
    engine.react(&me("bob"), &dm, 1, "👍", true).await.unwrap();
    engine
        .react(&me("alice"), &dm, 1, "👍", true)
        .await
        .unwrap();
    engine
        .react(&me("alice"), &conv("group:g"), 2, "x", true)
        .await
        .unwrap();
    engine.mark_read(&me("bob"), &dm, Some(2)).await.unwrap();
    // An id that begins another: sled's key order (`bo 0xFF …` after
    // `bob`) is not the export's text order.
    engine
        .put_user(&root(), &uid("bo"), Default::default())
        .await
        .unwrap();
    engine.join(&me("bo"), &g, &uid("bo")).await.unwrap();
    engine.link(&me("bo"), &uid("bob")).await.unwrap();
    engine.link(&me("bob"), &uid("bo")).await.unwrap();
    send(&engine, "bo", "dm:bo:bob", 5).await;
    send(&engine, "bob", "dm:alice:bob", 6).await;
    // Marks: a join request, a ban, blocks, a suspension.
    let club = gid("club");
    engine
        .put_group(
            &me("alice"),
            &club,
            Default::default(),
            Some(JoinPolicy::Approval),
        )
        .await
        .unwrap();
    engine
        .join(&me("carol"), &club, &uid("carol"))
        .await
        .unwrap();
    engine.ban(&me("alice"), &g, &uid("bo")).await.unwrap();
    engine.block(&me("carol"), &uid("alice")).await.unwrap();
    engine.block(&me("bo"), &uid("bob")).await.unwrap();
    engine.suspend(&root(), &uid("bo"), true).await.unwrap();
    let presence = engine.store().set_presence(&uid("carol"), false, 77).await;
    presence.map_err(Into::<StoreError>::into).unwrap();

    let records = export_all(engine.store()).await;
    let want = reads(&engine).await;
    let (copy, _copy_data) = F::open().await;
    assert_eq!(
        import_all(&copy, &records).await.unwrap(),
        records.len() as u64 - 2
    );
    let through_engine: Vec<Record> = {
        let mut lines = pin!(engine.export(&root()).unwrap());
        let mut out = Vec::new();
        while let Some(r) = export::next(&mut lines).await {
            out.push(r.unwrap());
        }
        out
    };
    assert_eq!(
        through_engine, records,
        "the engine's export is the store's"
    );
    assert_eq!(
        engine.export(&me("alice")).map(drop).unwrap_err().kind(),
        crate::ErrorKind::Forbidden
    );
    assert_eq!(
        export_all(&copy).await,
        records,
        "the same kind exports the same"
    );
    let copy = Engine::new(copy);
    assert_eq!(reads(&copy).await, want, "and reads the same");
    let memory = MemoryStore::new();
    import_all(&memory, &records).await.unwrap();
    assert_eq!(
        export_all(&memory).await,
        records,
        "memory exports the same"
    );

    assert!(matches!(
        import_all(copy.store(), &records).await,
        Err(ImportError::NotEmpty)
    ));
    let mut shuffled = records.clone();
    let m = shuffled
        .iter()
        .position(|r| matches!(r, Record::Message(_)))
        .unwrap();
    shuffled.remove(m);
    let err = import_all(&MemoryStore::new(), &shuffled)
        .await
        .unwrap_err();
    assert!(matches!(err, ImportError::Invalid { .. }), "{err}");
    let err = import_all(&MemoryStore::new(), &records[1..])
        .await
        .unwrap_err();
    assert!(matches!(err, ImportError::Format { line: 1 }), "{err}");
    let cut = &records[..records.len() - 3];
    let err = import_all(&MemoryStore::new(), cut).await.unwrap_err();
    assert!(matches!(err, ImportError::Truncated), "{err}");
}
