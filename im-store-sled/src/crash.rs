//! Named points where a test can make the process die, to check what a
//! crash at that very moment leaves (feature `crash-points`, for the crash
//! test only; without it every point is a no-op).
//!
//! `IM_STORE_SLED_CRASH=<point>:<n>` arms one point: the `n`th time the
//! process reaches it (counting from 1), [`reached`] answers true and the
//! caller does its partial work, then calls [`die`], which prints
//! `CRASH <point>` on stdout and aborts.

/// Whether this is the armed visit of `point`.
#[cfg(feature = "crash-points")]
pub(crate) fn reached(point: &str) -> bool {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static VISITS: AtomicU64 = AtomicU64::new(0);
    let armed = ARMED.get_or_init(|| {
        let spec = std::env::var("IM_STORE_SLED_CRASH").ok()?;
        let (name, n) = spec.rsplit_once(':')?;
        Some((name.to_owned(), n.parse().ok()?))
    });
    match armed {
        Some((name, n)) if name == point => VISITS.fetch_add(1, Ordering::SeqCst) + 1 == *n,
        _ => false,
    }
}

/// Whether this is the armed visit of `point` (never, in this build).
#[cfg(not(feature = "crash-points"))]
pub(crate) fn reached(_point: &str) -> bool {
    false
}

/// Says which point it died at, and aborts: no destructor runs, nothing
/// buffered is written, as after a SIGKILL.
pub(crate) fn die(point: &str) -> ! {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "CRASH {point}");
    let _ = out.flush();
    std::process::abort()
}
