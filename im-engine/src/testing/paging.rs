//! The conformance case of list paging: members, contacts and the
//! conversation list, walked page by page with `next`.

use super::StoreFactory;
use super::conformance::{all, fixture, gid, me, root, send, uid};
use crate::{ErrorKind, JoinPolicy, ListQuery, Page};

/// Reads a whole list `limit` items a page, following `next`; checks that
/// every page but the last is full and says `has_more`.
async fn walk<T>(
    limit: usize,
    mut read: impl AsyncFnMut(ListQuery) -> Result<Page<T>, crate::Error>,
) -> Vec<T> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = read(ListQuery {
            after: after.take(),
            limit: Some(limit),
        })
        .await
        .expect("a page reads");
        assert_eq!(page.has_more, page.next.is_some(), "next only with more");
        if page.has_more {
            assert_eq!(page.items.len(), limit, "a page before the last is full");
        }
        out.extend(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

/// Members page by user id, contacts newest first and conversations by
/// activity, each walked in small pages to the same list as one large
/// page; bad cursors and limits are invalid.
pub async fn lists_page_with_cursors<F: StoreFactory>() {
    let (engine, _data) = fixture::<F>().await;
    let g = gid("big");
    engine
        .put_group(&me("alice"), &g, Default::default(), Some(JoinPolicy::Open))
        .await
        .unwrap();
    let mut ids = vec!["alice".to_string()];
    for i in 0..25 {
        let u = uid(&format!("m{:02}", (i * 7) % 25));
        engine
            .put_user(&root(), &u, Default::default())
            .await
            .unwrap();
        engine.join(&me(u.as_str()), &g, &u).await.unwrap();
        engine.link(&me("alice"), &u).await.unwrap();
        ids.push(u.to_string());
        send(&engine, "alice", &format!("dm:alice:{u}"), i).await;
    }
    ids.sort();

    let members = walk(10, async |q| engine.members(&root(), &g, &q).await).await;
    let got: Vec<String> = members.iter().map(|m| m.id.to_string()).collect();
    assert_eq!(got, ids, "members by id, each once");

    let one = engine.contacts(&me("alice"), &all()).await.unwrap();
    assert!(!one.has_more);
    assert_eq!(one.items.len(), 25);
    assert_eq!(
        walk(4, async |q| engine.contacts(&me("alice"), &q).await).await,
        one.items
    );

    let query = ListQuery::default();
    let one = engine
        .conversation_page(&me("alice"), &query)
        .await
        .unwrap();
    assert_eq!(one.items.len(), 26, "25 direct conversations and the group");
    assert_eq!(
        walk(3, async |q| engine
            .conversation_page(&me("alice"), &q)
            .await)
        .await,
        one.items
    );

    let bad = |after: &str, limit| ListQuery {
        after: Some(after.into()),
        limit,
    };
    let kind = |r: Result<(), crate::Error>| r.unwrap_err().kind();
    let (a, r) = (me("alice"), root());
    let (members, contacts) = (
        engine.members(&r, &g, &bad("a b", None)).await.map(drop),
        engine.contacts(&a, &bad("bob", None)).await.map(drop),
    );
    assert_eq!(kind(members), ErrorKind::Invalid);
    assert_eq!(kind(contacts), ErrorKind::Invalid);
    let too_many = engine.members(&r, &g, &bad("x", Some(1001))).await;
    assert_eq!(kind(too_many.map(drop)), ErrorKind::Invalid);
    let list = engine.conversation_page(&a, &bad("x:dm:a:b", None)).await;
    assert_eq!(kind(list.map(drop)), ErrorKind::Invalid);
    let stranger = engine.members(&me("bob"), &g, &ListQuery::default()).await;
    assert_eq!(kind(stranger.map(drop)), ErrorKind::Forbidden);
}
