//! The conformance cases of passwords, logins and private profile fields:
//! one behaviour each, generic over the store, like those of
//! [`conformance`](super::conformance).

use super::StoreFactory;
use super::conformance::{fixture_with, kind, me, root, uid};
use crate::{Actor, Config, Engine, ErrorKind, FieldPatch, Password, Store};

fn pw(s: &str) -> Password {
    Password::new(s)
}

async fn logs_in<S: Store>(engine: &Engine<S>, user: &str, password: &str) -> bool {
    let who = engine
        .login(&uid(user), &pw(password))
        .await
        .expect("login answers");
    if let Some(actor) = &who {
        assert_eq!(*actor, Actor::user(uid(user)), "a login is never an admin");
    }
    who.is_some()
}

/// The stored hash of `user`'s password, as the store holds it.
async fn stored_hash<S: Store>(engine: &Engine<S>, user: &str) -> Option<String> {
    let record = engine.store().user(&uid(user)).await.expect("store reads");
    let record = record.expect("the user exists");
    record.password.map(|h| h.0)
}

/// A user sets its own password, then needs the old one to change it; an
/// admin sets anyone's without it; nobody else sets it; the password
/// logs in, is kept only as an Argon2id hash, and survives a reopen.
pub async fn passwords_are_set_and_checked<F: StoreFactory>() {
    let (engine, data, clock) = fixture_with::<F>(Config::default()).await;
    let alice = uid("alice");
    assert!(!logs_in(&engine, "alice", "no password yet").await);
    assert!(!logs_in(&engine, "nobody", "whatever1").await);

    engine
        .set_password(&me("alice"), &alice, &pw("first pass"), None)
        .await
        .expect("a first password needs no old one");
    assert!(logs_in(&engine, "alice", "first pass").await);
    assert!(!logs_in(&engine, "alice", "first pasS").await);
    assert!(!logs_in(&engine, "bob", "first pass").await);
    let hash = stored_hash(&engine, "alice")
        .await
        .expect("a hash is stored");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("first pass"));

    // Refused: no old password, a wrong one, someone else, bad lengths,
    // no such user. None changes anything.
    let refusals = [
        (
            me("alice"),
            "alice",
            "second pass",
            None,
            ErrorKind::Forbidden,
        ),
        (
            me("alice"),
            "alice",
            "second pass",
            Some("wrong pass"),
            ErrorKind::Forbidden,
        ),
        (
            me("alice"),
            "alice",
            "second pass",
            Some("short"),
            ErrorKind::Forbidden,
        ),
        (
            me("bob"),
            "alice",
            "second pass",
            Some("first pass"),
            ErrorKind::Forbidden,
        ),
        (
            me("alice"),
            "alice",
            "short",
            Some("first pass"),
            ErrorKind::Invalid,
        ),
        (root(), "alice", &"x".repeat(1025), None, ErrorKind::Invalid),
        (root(), "nobody", "second pass", None, ErrorKind::NotFound),
    ];
    for (actor, user, new, old, expected) in refusals {
        let old = old.map(pw);
        let r = engine
            .set_password(&actor, &uid(user), &pw(new), old.as_ref())
            .await;
        assert_eq!(kind(r), expected, "{actor:?} sets {user}'s");
    }
    assert_eq!(stored_hash(&engine, "alice").await.as_ref(), Some(&hash));
    assert!(logs_in(&engine, "alice", "first pass").await);

    engine
        .set_password(
            &me("alice"),
            &alice,
            &pw("second pass"),
            Some(&pw("first pass")),
        )
        .await
        .expect("the old password lets the user change it");
    assert!(!logs_in(&engine, "alice", "first pass").await);
    assert!(logs_in(&engine, "alice", "second pass").await);

    engine
        .set_password(&root(), &alice, &pw("reset by admin"), None)
        .await
        .expect("an admin needs no old password");
    assert!(!logs_in(&engine, "alice", "second pass").await);

    let store = engine.try_into_store().expect("last engine handle");
    let store = F::reopen(store, &data).await;
    let engine = Engine::with_clock(store, Config::default(), clock);
    assert!(logs_in(&engine, "alice", "reset by admin").await);
    assert!(!logs_in(&engine, "bob", "reset by admin").await);
}

/// A profile patch, by the user or an admin, even at the same time as a
/// password change, keeps the password.
pub async fn a_field_patch_keeps_the_password<F: StoreFactory>() {
    let (engine, _data, _) = fixture_with::<F>(Config::default()).await;
    let alice = uid("alice");
    engine
        .set_password(&me("alice"), &alice, &pw("first pass"), None)
        .await
        .unwrap();
    let name = |v: &str| -> FieldPatch { [("name".to_string(), Some(v.to_string()))].into() };
    engine
        .put_user(&me("alice"), &alice, name("Alice"))
        .await
        .unwrap();
    engine.put_user(&root(), &alice, name("Al")).await.unwrap();
    assert!(logs_in(&engine, "alice", "first pass").await);

    let change = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let old = pw("first pass");
            engine
                .set_password(&me("alice"), &uid("alice"), &pw("second pass"), Some(&old))
                .await
        })
    };
    for i in 0..20 {
        engine
            .put_user(&me("alice"), &alice, name(&i.to_string()))
            .await
            .unwrap();
    }
    change
        .await
        .expect("no panic")
        .expect("the change succeeds");
    assert!(logs_in(&engine, "alice", "second pass").await);
    let p = engine.user(&me("alice"), &alice).await.unwrap();
    assert_eq!(p.fields["name"], "19", "and the patches are kept too");
}

/// Fields named `_…` are shown only to the user itself and to admins.
pub async fn private_fields_are_shown_to_the_user_and_admins<F: StoreFactory>() {
    let (engine, _data, _) = fixture_with::<F>(Config::default()).await;
    let alice = uid("alice");
    let patch: FieldPatch = [
        ("name".to_string(), Some("Alice".to_string())),
        ("_phone".to_string(), Some("555-0100".to_string())),
    ]
    .into();
    let (own, _) = engine.put_user(&me("alice"), &alice, patch).await.unwrap();
    assert_eq!(own.fields.len(), 2, "the answer to the user itself");
    for (viewer, sees) in [(me("alice"), true), (root(), true), (me("bob"), false)] {
        let p = engine.user(&viewer, &alice).await.unwrap();
        assert_eq!(p.fields.get("name").map(String::as_str), Some("Alice"));
        assert_eq!(p.fields.contains_key("_phone"), sees, "{viewer:?}");
    }
}
