//! The benchmark suite runs end to end at tiny sizes (seconds, not
//! minutes): it only checks that every figure is produced, never how fast.

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
        .expect("run im-bench (scripts/test installs wrk first)");
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
    for group in [
        "HTTP send",
        "engine send",
        "SSE fan-out",
        "idle SSE memory",
        "every feed",
        "replay",
    ] {
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
