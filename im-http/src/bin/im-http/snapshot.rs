//! `im-http export` and `im-http import`: a stopped server's store as JSON
//! Lines, and such a file into an empty store of any kind (the format:
//! `im_engine::store::export`).

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::pin::pin;
use std::time::Duration;

use clap::Args;
use im_engine::Store;
use im_engine::store::export::{self, ImportError, Importer, Record};
use im_http::error::ErrorChain;

use super::{BoxError, StoreSpec};

/// Where the store is, for `export` and `import`.
#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// The store: `sled:<dir>` (of a stopped server: sled allows one
    /// process), `redis://host:port[/db]` or `redis+cluster://h1:p1,…`.
    #[arg(long, env = "IM_STORE")]
    store: StoreSpec,
    /// redis only: the key prefix, as the server's `--redis-prefix`.
    #[arg(long, env = "IM_REDIS_PREFIX", default_value = "im:")]
    redis_prefix: String,
}

/// `im-http export`.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Write the export here rather than to standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// `im-http import`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The export to load (`-`: standard input).
    file: PathBuf,
}

/// Writes every line of the store's export; answers how many records.
pub(crate) async fn export(args: ExportArgs) -> Result<u64, BoxError> {
    let out: Box<dyn Write + Send> = match &args.output {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let out = BufWriter::new(out);
    match open(&args.store, false).await? {
        #[cfg(feature = "sled")]
        Opened::Sled(store) => {
            let n = write_export(&store, out).await;
            close_sled(store).await?;
            n
        }
        #[cfg(feature = "redis")]
        Opened::Redis(store) => write_export(&store, out).await,
    }
}

/// Loads the file into the empty store; answers how many records.
pub(crate) async fn import(args: ImportArgs) -> Result<u64, BoxError> {
    let input: Box<dyn BufRead + Send> = if args.file.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(&args.file)
            .map_err(|e| format!("cannot read {}: {e}", args.file.display()))?;
        Box::new(std::io::BufReader::new(file))
    };
    match open(&args.store, true).await? {
        #[cfg(feature = "sled")]
        Opened::Sled(store) => {
            let n = load(&store, input).await;
            close_sled(store).await?;
            n
        }
        #[cfg(feature = "redis")]
        Opened::Redis(store) => load(&store, input).await,
    }
}

async fn write_export<S: Store>(store: &S, mut out: impl Write) -> Result<u64, BoxError> {
    let mut lines = pin!(export::lines(store));
    let mut n: u64 = 0;
    while let Some(record) = export::next(&mut lines).await {
        let record = record.map_err(|e| format!("the store failed: {}", ErrorChain(&e)))?;
        serde_json::to_writer(&mut out, &record)?;
        out.write_all(b"\n")?;
        n += 1;
    }
    out.flush()?;
    Ok(n.saturating_sub(2))
}

async fn load<S: Store>(store: &S, input: impl BufRead) -> Result<u64, BoxError> {
    let empty = export::is_empty(store).await.map_err(store_failed)?;
    if !empty {
        return Err(ImportError::NotEmpty.into());
    }
    let mut importer = Importer::new(store);
    for (i, line) in input.lines().enumerate() {
        let line = line?;
        let record: Record = serde_json::from_str(&line)
            .map_err(|e| format!("line {}: not a record of an export: {e}", i + 1))?;
        importer.record(record).await?;
    }
    Ok(importer.finish().await?)
}

fn store_failed(e: impl Into<im_engine::StoreError>) -> BoxError {
    format!("the store failed: {}", ErrorChain(&e.into())).into()
}

/// A store opened for an export or an import.
enum Opened {
    #[cfg(feature = "sled")]
    Sled(im_store_sled::SledStore),
    #[cfg(feature = "redis")]
    Redis(im_store_redis::RedisStore),
}

/// Opens the store; sled in periodic mode for an import (`bulk`), which
/// flushes once at its end.
async fn open(args: &StoreArgs, bulk: bool) -> Result<Opened, BoxError> {
    match &args.store {
        StoreSpec::Memory => Err(
            "the memory store lives only inside a server: export it with GET /v1/admin/export"
                .into(),
        ),
        #[cfg(feature = "sled")]
        StoreSpec::Sled(dir) => {
            let mut config = im_store_sled::SledConfig::new(dir.clone());
            if bulk {
                let every_ms = 1000;
                config = config.durability(im_store_sled::Durability::Periodic { every_ms });
            }
            let store = tokio::task::spawn_blocking(move || im_store_sled::SledStore::open(config))
                .await?
                .map_err(|e| {
                    format!(
                        "cannot open the sled store (a running server's? export it with GET \
                         /v1/admin/export): {}",
                        ErrorChain(&e)
                    )
                })?;
            Ok(Opened::Sled(store))
        }
        #[cfg(not(feature = "sled"))]
        StoreSpec::Sled(_) => Err("this build has no sled store (feature `sled`)".into()),
        #[cfg(feature = "redis")]
        StoreSpec::Redis(url) => {
            let config = im_store_redis::RedisConfig::new(url.clone())
                .prefix(args.redis_prefix.clone())
                .timeout(Duration::from_secs(30));
            let store = im_store_redis::RedisStore::open(config)
                .await
                .map_err(|e| format!("cannot open the redis store: {}", ErrorChain(&e)))?;
            Ok(Opened::Redis(store))
        }
        #[cfg(not(feature = "redis"))]
        StoreSpec::Redis(url) => {
            Err(format!("this build has no redis store (feature `redis`) for {url}").into())
        }
    }
}

#[cfg(feature = "sled")]
async fn close_sled(store: im_store_sled::SledStore) -> Result<(), BoxError> {
    tokio::task::spawn_blocking(move || store.close()).await??;
    Ok(())
}
