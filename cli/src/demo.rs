//! `warren demo`: the README's main job. Starts a local network of real node
//! processes, inserts a document at one node, fetches it at a node several
//! hops away, checks it is identical, prints the figures, and stops everything.

use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use rand::{RngCore as _, SeedableRng as _};

use crate::api_client::ApiClient;
use crate::testnet::{StartArgs, Testnet};

/// Bytes per MiB, for sizes given in MiB.
const MIB: u64 = 1024 * 1024;

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Number of node processes.
    #[arg(long, default_value_t = 10)]
    nodes: usize,
    /// Document to insert [default: a generated document of --size-mib].
    #[arg(long)]
    file: Option<PathBuf>,
    /// Size of the generated document.
    #[arg(long, default_value_t = 16)]
    size_mib: u64,
    /// Working directory for the nodes [default: a fresh temporary directory].
    #[arg(long)]
    dir: Option<PathBuf>,
}

pub(crate) fn run(args: &DemoArgs) -> Result<()> {
    let temp;
    let dir = if let Some(dir) = &args.dir {
        dir.clone()
    } else {
        temp = tempfile::Builder::new().prefix("warren-demo-").tempdir()?;
        temp.path().to_path_buf()
    };
    let document = match &args.file {
        Some(path) => path.clone(),
        None => generate_document(&dir.join("document.bin"), args.size_mib)?,
    };
    let size = std::fs::metadata(&document)
        .with_context(|| format!("cannot read {}", document.display()))?
        .len();

    println!("starting {} node processes on loopback…", args.nodes);
    let net = Testnet::start(&StartArgs {
        nodes: args.nodes,
        dir: dir.join("net"),
        seed: 1,
        detach: false,
    })?;
    let result = insert_and_fetch(&net, &document, size, &dir);
    net.stop()?;
    result
}

fn insert_and_fetch(
    net: &Testnet,
    document: &PathBuf,
    size: u64,
    dir: &std::path::Path,
) -> Result<()> {
    let inserter = 0;
    let (fetcher, hops) = (0..net.nodes.len())
        .filter_map(|i| net.hops_between(inserter, i).map(|h| (i, h)))
        .max_by_key(|&(_, h)| h)
        .context("the testnet graph is empty")?;

    let started = Instant::now();
    let mut file = File::open(document)?;
    let uri = ApiClient::for_data_dir(net.nodes[inserter].api, &net.nodes[inserter].data_dir)
        .insert(&mut file as &mut dyn Read, Some("application/octet-stream"))?;
    let insert_time = started.elapsed();
    println!(
        "inserted {} ({:.1} MiB) at node {inserter} in {:.2?} ({:.1} MiB/s)",
        document.display(),
        size as f64 / MIB as f64,
        insert_time,
        size as f64 / MIB as f64 / insert_time.as_secs_f64()
    );
    println!("key: {uri}");

    let started = Instant::now();
    let mut download =
        ApiClient::for_data_dir(net.nodes[fetcher].api, &net.nodes[fetcher].data_dir)
            .fetch(&uri)?;
    let fetched_path = dir.join("fetched.bin");
    let mut out = File::create(&fetched_path)?;
    let copied = std::io::copy(&mut download.reader, &mut out).context("fetch failed part way")?;
    out.flush()?;
    let fetch_time = started.elapsed();
    println!(
        "fetched at node {fetcher}, {hops} hops from the inserter, in {:.2?} ({:.1} MiB/s)",
        fetch_time,
        copied as f64 / MIB as f64 / fetch_time.as_secs_f64()
    );

    if copied != size || !same_contents(document, &fetched_path)? {
        bail!("the fetched document differs from the inserted one");
    }
    println!("fetched document is identical to the inserted one ({copied} bytes)");
    Ok(())
}

fn same_contents(a: &std::path::Path, b: &std::path::Path) -> Result<bool> {
    Ok(std::fs::read(a)? == std::fs::read(b)?)
}

fn generate_document(path: &std::path::Path, size_mib: u64) -> Result<PathBuf> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut rng = rand_chacha::ChaCha8Rng::from_entropy();
    let mut file =
        File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut chunk = vec![0u8; MIB as usize];
    for _ in 0..size_mib {
        rng.fill_bytes(&mut chunk);
        file.write_all(&chunk)?;
    }
    Ok(path.to_path_buf())
}
