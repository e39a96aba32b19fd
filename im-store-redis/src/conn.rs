//! Connections: one multiplexed, self-reconnecting connection per Redis
//! node whatever the number of callers, for a single Redis or a cluster.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, ProtocolVersion, RedisFuture, Value};

use crate::error::{Error, Result};

/// Where Redis is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// One server: a `redis://` URL.
    Single(String),
    /// A cluster: `redis://host:port` of some of its nodes.
    Cluster(Vec<String>),
}

impl Target {
    /// `redis://host:port[/db]` or `redis+cluster://h1:p1,h2:p2,…`.
    pub(crate) fn parse(url: &str) -> Result<Self> {
        if let Some(nodes) = url.strip_prefix("redis+cluster://") {
            let nodes: Vec<String> = nodes
                .trim_end_matches('/')
                .split(',')
                .filter(|n| !n.is_empty())
                .map(|n| format!("redis://{n}"))
                .collect();
            if nodes.is_empty() {
                return Err(Error::Config(
                    "redis+cluster:// needs at least one host:port".into(),
                ));
            }
            Ok(Self::Cluster(nodes))
        } else if url.starts_with("redis://") || url.starts_with("rediss://") {
            Ok(Self::Single(url.to_owned()))
        } else {
            Err(Error::Config(format!(
                "expected redis://host:port[/db] or redis+cluster://h1:p1,h2:p2,…, got {url:?}"
            )))
        }
    }
}

/// Commands go to one server, or are routed by key slot in a cluster.
#[derive(Clone)]
pub(crate) enum Conn {
    /// A single Redis.
    Single(ConnectionManager),
    /// A cluster.
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Single(_) => "Conn::Single",
            Self::Cluster(_) => "Conn::Cluster",
        })
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// A single server's connection manager: it reconnects by itself, and gives
/// up on a reconnection attempt soon, so that the next command (bounded by
/// the store's timeout) starts a fresh one once Redis is back.
pub(crate) fn manager_config(timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500))
}

/// A cluster client with the store's bounds.
pub(crate) fn cluster_client(
    nodes: &[String],
    timeout: Duration,
    resp3: Option<tokio::sync::mpsc::UnboundedSender<redis::PushInfo>>,
) -> Result<ClusterClient> {
    let mut b = ClusterClientBuilder::new(nodes.to_vec())
        .connection_timeout(timeout)
        .response_timeout(timeout)
        .retries(2)
        .min_retry_wait(50)
        .max_retry_wait(500);
    if let Some(tx) = resp3 {
        b = b.use_protocol(ProtocolVersion::RESP3).push_sender(tx);
    }
    Ok(b.build()?)
}

/// Opens the command connection.
pub(crate) async fn connect(target: &Target, timeout: Duration) -> Result<Conn> {
    let open = async {
        Ok::<_, Error>(match target {
            Target::Single(url) => {
                let client = redis::Client::open(url.as_str())?;
                Conn::Single(
                    ConnectionManager::new_with_config(client, manager_config(timeout)).await?,
                )
            }
            Target::Cluster(nodes) => Conn::Cluster(
                cluster_client(nodes, timeout, None)?
                    .get_async_connection()
                    .await?,
            ),
        })
    };
    bounded(timeout, open).await
}

/// Runs `fut`, failing with [`Error::Timeout`] after `timeout`.
pub(crate) async fn bounded<T>(
    timeout: Duration,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or(Err(Error::Timeout(timeout)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_server_or_a_cluster() {
        assert_eq!(
            Target::parse("redis://127.0.0.1:6379/2").unwrap(),
            Target::Single("redis://127.0.0.1:6379/2".into())
        );
        assert_eq!(
            Target::parse("redis+cluster://a:1,b:2").unwrap(),
            Target::Cluster(vec!["redis://a:1".into(), "redis://b:2".into()])
        );
        assert!(Target::parse("redis+cluster://").is_err());
        assert!(Target::parse("sled:./x").is_err());
    }
}
