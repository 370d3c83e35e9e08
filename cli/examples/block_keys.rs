//! The blocks a file becomes, for `scripts/soak.py`: encodes FILE as
//! `warren insert` does and prints one line per segment of its splitfile,
//! `k URI URI …` (the segment's data block count, then a `CHK@` URI per data
//! and check block), so the soak can ask the network later which of them it
//! still holds. Prints nothing for a file that is a single block.
//!
//! `cargo run -p warren --example block_keys -- FILE`

use std::io::Write as _;

use anyhow::{bail, Context, Result};
use warren_crypto::{encode_bytes, ChkUri, Extra, Metadata};

fn main() -> Result<()> {
    let Some(path) = std::env::args_os().nth(1) else {
        bail!("usage: block_keys FILE");
    };
    let data = std::fs::read(&path).context("cannot read the file")?;
    let encoded = encode_bytes(&data, None).context("cannot encode")?;
    let (root, _) = encoded.blocks.split_last().context("no blocks")?;
    if encoded.uri.extra.kind == warren_crypto::ContentKind::Data {
        return Ok(());
    }
    let document = root.decode(&encoded.uri.key.crypto)?;
    let Metadata::Splitfile(manifest) = Metadata::from_bytes(&document)? else {
        // Split metadata (files far above the soak's sizes): not listed.
        return Ok(());
    };
    let mut out = std::io::stdout().lock();
    for segment in &manifest.segments {
        write!(out, "{}", segment.data.len())?;
        for key in segment.data.iter().chain(&segment.check) {
            write!(out, " {}", ChkUri::new(key.clone(), Extra::DATA))?;
        }
        writeln!(out)?;
    }
    Ok(())
}
