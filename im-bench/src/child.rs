//! Starting a server of [`crate::server`] as a child process.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

use crate::server::Kind;

/// A running server; killed when dropped.
#[derive(Debug)]
pub struct Server {
    child: Child,
    _stdin: ChildStdin,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Server {
    /// Starts `kind` with `users` users and a group of `group` members,
    /// waiting until it listens.
    ///
    /// # Panics
    ///
    /// When the child cannot start or dies before listening.
    pub async fn start(
        kind: Kind,
        users: usize,
        group: usize,
        dir: Option<&std::path::Path>,
    ) -> Self {
        let exe = std::env::current_exe().expect("own executable");
        let kind_name = clap::ValueEnum::to_possible_value(&kind)
            .expect("named kind")
            .get_name()
            .to_owned();
        let mut cmd = Command::new(exe);
        cmd.args([
            "server",
            "--kind",
            &kind_name,
            "--users",
            &users.to_string(),
            "--group",
            &group.to_string(),
        ]);
        if let Some(dir) = dir {
            cmd.arg("--dir").arg(dir);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .expect("start the server");
        let stdin = child.stdin.take().expect("piped stdin");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let port = loop {
            match lines.next_line().await.expect("read the server's output") {
                Some(line) => {
                    if let Some(port) = line.strip_prefix("ready ") {
                        break port.trim().parse().expect("a port");
                    }
                }
                None => panic!("the {kind_name} server died before listening"),
            }
        };
        Self {
            child,
            _stdin: stdin,
            port,
        }
    }

    /// Its resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.id().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}
