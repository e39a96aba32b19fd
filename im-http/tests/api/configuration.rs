//! The binary's configuration: every `serve` option from an `IM_…`
//! variable, the secret from a file, JSON logs, and the client address in
//! each request's log line.

use std::process::Command;

use hyper::Method;
use serde_json::{Value, json};

use crate::binary::{im_http, token};
use crate::common::{Client, eventually, spawn_serve};

/// The options of `serve --help`, each with the text that explains it.
fn options(help: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in help.lines() {
        let trimmed = line.trim_start();
        let option = trimmed
            .strip_prefix("-h, ")
            .or_else(|| trimmed.strip_prefix("-V, "))
            .unwrap_or(trimmed);
        if let Some(rest) = option.strip_prefix("--") {
            let name = rest.split([' ', '<', '=']).next().unwrap().to_owned();
            out.push((name, String::new()));
        } else if let Some((_, text)) = out.last_mut() {
            text.push_str(trimmed);
            text.push(' ');
        }
    }
    out
}

#[test]
fn every_serve_option_can_come_from_an_im_variable() {
    let out = im_http(&["serve", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let options = options(&help);
    assert!(options.len() > 20, "{help}");
    for (name, text) in &options {
        if name == "help" {
            continue;
        }
        let var = format!("[env: IM_{}", name.to_uppercase().replace('-', "_"));
        assert!(text.contains(&var), "--{name} has no {var}]:\n{text}");
    }
}

/// A running `im-http serve` configured by `cmd`, with the lines it logs.
struct Running {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Running {
    fn start(cmd: Command) -> Running {
        let (child, addr, log) = spawn_serve(cmd);
        Running { child, addr, log }
    }

    fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits for the log line that contains `needle`.
    async fn line(&self, needle: &str) -> String {
        eventually(&format!("a log line with {needle}"), || async {
            self.lines().iter().any(|l| l.contains(needle))
        })
        .await;
        self.lines()
            .into_iter()
            .find(|l| l.contains(needle))
            .unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn serve_takes_its_options_from_im_variables_and_logs_json() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "a secret from a file\n").unwrap();
    let secret_path = secret_file.to_str().unwrap();
    let mut cmd = im_http(&["serve"]);
    cmd.env("IM_LISTEN", "127.0.0.1:0")
        .env("IM_STORE", "memory")
        .env("IM_SECRET_FILE", secret_path)
        .env("IM_METRICS_LISTEN", "127.0.0.1:0")
        .env("IM_LOG_FORMAT", "json")
        .env("IM_CORS_ORIGIN", "https://a.example,https://b.example")
        .env("IM_TRUST_FORWARDED_FOR", "true")
        .env("IM_MAX_BODY_BYTES", "100")
        .env("IM_SEND_RATE", "0");
    let serve = Running::start(cmd);

    // The secret file signs for both commands.
    let admin = token(&["root", "--admin", "--secret-file", secret_path]);
    let admin = Client {
        addr: serve.addr,
        token: Some(admin),
    };
    assert_eq!(admin.put("/v1/users/alice", json!({})).await.status, 201);
    assert_eq!(admin.put("/v1/users/bob", json!({})).await.status, 201);
    let alice = admin.with_token(&token(&["alice", "--secret-file", secret_path]));
    let r = alice
        .send("dm:alice:bob", json!({"text": "x".repeat(200)}))
        .await;
    r.assert_error(413, "payload_too_large");

    // Both origins of the list.
    for origin in ["https://a.example", "https://b.example"] {
        let r = alice
            .request(Method::GET, "/v1/contacts")
            .header("origin", origin)
            .send()
            .await;
        assert_eq!(r.header("access-control-allow-origin"), Some(origin));
    }

    // The metrics listener, without a token.
    let line: Value = serde_json::from_str(&serve.line("metrics_listen").await).unwrap();
    let metrics = Client {
        addr: line["metrics_listen"].as_str().unwrap().parse().unwrap(),
        token: None,
    };
    let r = metrics.get("/metrics").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("im_http_requests_total"));

    // Each request's line names its client: the forwarded one when trusted.
    alice
        .request(Method::GET, "/v1/contacts")
        .header("x-request-id", "behind-a-proxy")
        .header("x-forwarded-for", "203.0.113.7, 10.0.0.2")
        .send()
        .await;
    alice
        .request(Method::GET, "/v1/contacts")
        .header("x-request-id", "direct")
        .send()
        .await;
    let proxied: Value = serde_json::from_str(&serve.line("behind-a-proxy").await).unwrap();
    assert_eq!(proxied["client"], "203.0.113.7", "{proxied}");
    assert_eq!(proxied["message"], "request");
    assert_eq!(proxied["route"], "/v1/contacts");
    let direct: Value = serde_json::from_str(&serve.line("\"direct\"").await).unwrap();
    let client = direct["client"].as_str().unwrap();
    assert!(client.starts_with("127.0.0.1:"), "{direct}");

    // Every line is one JSON object.
    for line in serve.lines() {
        let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            value["level"].is_string() && value["timestamp"].is_string(),
            "{line}"
        );
    }
}

#[tokio::test]
async fn text_logs_name_the_peer_and_ignore_forwarded_for_unless_trusted() {
    let mut cmd = im_http(&["serve", "--listen", "127.0.0.1:0", "--store", "memory"]);
    cmd.args(["--secret", "s"]);
    let serve = Running::start(cmd);
    let client = Client {
        addr: serve.addr,
        token: None,
    };
    client
        .request(Method::GET, "/livez")
        .header("x-request-id", "text-line")
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await;
    let line = serve.line("text-line").await;
    assert!(line.contains("client=127.0.0.1:"), "{line}");
    assert!(!line.contains("203.0.113.7"), "{line}");
}

#[test]
fn a_secret_given_twice_or_an_empty_secret_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let empty = empty.to_str().unwrap();
    for args in [
        vec!["token", "alice", "--secret", "s", "--secret-file", empty],
        vec!["token", "alice", "--secret-file", empty],
        vec!["token", "alice", "--secret-file", "/no/such/file"],
        vec!["serve", "--store", "memory", "--secret-file", empty],
    ] {
        let out = im_http(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("secret"), "{args:?}: {stderr}");
    }
    // A bad origin is refused at start.
    let out = im_http(&["serve", "--store", "memory", "--cors-origin", "null"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("origin"));
}
