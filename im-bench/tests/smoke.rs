//! The benchmark suite runs end to end at tiny sizes (seconds, not
//! minutes): it only checks that every figure is produced, never how fast.
//! The Redis rows need redis-server and redis-cli (`scripts/test` installs
//! them); `IM_SKIP_REDIS=1` is the only way to leave them out.

use std::process::Command;

#[test]
fn every_figure_is_produced() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let json = dir.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_im-bench"))
        .arg("--smoke")
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run im-bench (scripts/test installs wrk and redis-server first)");
    assert!(
        out.status.success(),
        "im-bench failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("| figure |"), "no table:\n{table}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("the JSON report")).expect("JSON");
    let rows = report["rows"].as_array().expect("rows");
    let mut groups = vec![
        "HTTP send",
        "engine send",
        "edit, memory",
        "reaction, sled durable",
        "SSE fan-out",
        "typing into a",
        "idle SSE memory",
        "every feed",
        "replay",
    ];
    if !im_store_redis::testing::skip() {
        groups.extend([
            "engine send, redis, DM",
            "engine send, redis cluster",
            "group, redis",
            "group, redis cluster",
            "edit, redis cluster",
        ]);
    }
    for group in groups {
        assert!(
            rows.iter()
                .any(|r| r["figure"].as_str().is_some_and(|f| f.contains(group))),
            "no {group} figure"
        );
    }
    for r in rows {
        let v = r["value"].as_f64();
        assert!(
            v.is_some_and(f64::is_finite),
            "{} is not a number: {v:?}",
            r["figure"]
        );
    }
}

#[test]
fn the_redis_rows_fail_loudly_without_redis_server() {
    // An empty PATH: no redis-server. The check comes before any figure.
    let empty = tempfile::tempdir().expect("a temporary directory");
    let out = Command::new(env!("CARGO_BIN_EXE_im-bench"))
        .args(["--smoke", "--only", "engine"])
        .arg("--json")
        .arg(empty.path().join("report.json"))
        .env("PATH", empty.path())
        .env_remove("IM_SKIP_REDIS")
        .output()
        .expect("run im-bench");
    assert!(!out.status.success(), "im-bench succeeded without Redis");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("redis-server not found") && err.contains("IM_SKIP_REDIS=1"),
        "{err}"
    );
}
