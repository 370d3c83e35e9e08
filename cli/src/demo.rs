//! `warren demo`: the README's main job. Starts a local network of real node
//! processes, inserts a document at one node, fetches it at the end of a chain
//! of fresh nodes (so every block crosses at least [`CHAIN_HOPS`] hops, by
//! construction), checks it is identical, prints the figures, and stops
//! everything.

use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Instant;

use crate::testnet::{start_linked, StartArgs, Testnet, STARTUP_TIMEOUT};
use anyhow::{bail, Context, Result};
use clap::Args;

/// Bytes per MiB, for sizes given in MiB.
const MIB: u64 = 1024 * 1024;
/// Fresh nodes between the fetcher and the rest of the network.
pub const CHAIN_HOPS: usize = 3;

#[derive(Debug, Args)]
pub struct DemoArgs {
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

pub fn run(args: &DemoArgs) -> Result<()> {
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
    let mut net = start_linked(&StartArgs {
        nodes: args.nodes,
        dir: dir.join("net"),
        seed: 1,
        detach: false,
        wired: false,
        link_delay_ms: None,
        link_rate_kib: None,
    })?;
    // The fetcher hangs off the node farthest from the inserter, behind a
    // chain of empty nodes: the only way to the data is through all of them.
    let anchor =
        crate::testnet::topology::farthest_from(&net.adjacency(), 0).map_or(1, |(node, _)| node);
    let result = net.add_chain(anchor, CHAIN_HOPS).and_then(|fetcher| {
        net.wait_linked(STARTUP_TIMEOUT)?;
        insert_and_fetch(&net, fetcher, &document, size, &dir)
    });
    net.stop()?;
    result
}

fn insert_and_fetch(
    net: &Testnet,
    fetcher: usize,
    document: &PathBuf,
    size: u64,
    dir: &std::path::Path,
) -> Result<()> {
    let inserter = 0;

    let started = Instant::now();
    let mut file = File::open(document)?;
    let uri = net
        .api(inserter)
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
    let mut download = net.api(fetcher).fetch(&uri)?;
    let fetched_path = dir.join("fetched.bin");
    let mut out = File::create(&fetched_path)?;
    let copied = std::io::copy(&mut download.reader, &mut out).context("fetch failed part way")?;
    out.flush()?;
    let fetch_time = started.elapsed();
    println!(
        "fetched at node {fetcher}, at least {CHAIN_HOPS} hops from every node holding a block, in {:.2?} ({:.1} MiB/s)",
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
    crate::testfile::write_random_file(path, size_mib * MIB, rand::random())
        .with_context(|| format!("cannot create {}", path.display()))?;
    Ok(path.to_path_buf())
}
