//! What one login costs the engine: the time of one Argon2id check (the
//! crate's default parameters) through `Engine::login`, one at a time, and
//! logins per second with every core busy.
//!
//! `cargo run --release -p im-engine --example login_cost`

use std::time::Instant;

use im_engine::{Actor, Engine, MemoryStore, Password, UserId};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::new(MemoryStore::new());
    let alice = UserId::new("alice")?;
    let password = Password::new("correct horse battery");
    let root = Actor::admin(UserId::new("root")?);
    engine.put_user(&root, &alice, Default::default()).await?;
    engine.set_password(&root, &alice, &password, None).await?;

    let n = 50;
    let t = Instant::now();
    for _ in 0..n {
        assert!(engine.login(&alice, &password).await?.is_some());
    }
    let one = t.elapsed() / n;
    let nobody = UserId::new("nobody")?;
    let t = Instant::now();
    for _ in 0..n {
        assert!(engine.login(&nobody, &password).await?.is_none());
    }
    let unknown = t.elapsed() / n;

    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let t = Instant::now();
    let tasks: Vec<_> = (0..n * 4)
        .map(|_| {
            let (engine, alice, password) = (engine.clone(), alice.clone(), password.clone());
            tokio::spawn(async move { engine.login(&alice, &password).await })
        })
        .collect();
    for task in tasks {
        assert!(task.await??.is_some());
    }
    let rate = f64::from(n * 4) / t.elapsed().as_secs_f64();
    println!(
        "one login (right password): {:.1} ms",
        one.as_secs_f64() * 1e3
    );
    println!(
        "one login (unknown user):   {:.1} ms",
        unknown.as_secs_f64() * 1e3
    );
    println!("logins/s on {cores} cores:       {rate:.0}");
    Ok(())
}
