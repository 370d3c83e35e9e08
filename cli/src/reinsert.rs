//! `warren reinsert KEY`: the node fetches what KEY names and inserts it
//! again under the same keys, so content a user cares about stays in the
//! network after stores have evicted it. Only the key is needed, not the file.

use anyhow::{Context, Result};
use clap::Args;
use warren_crypto::AnyUri;

use crate::api_client::ApiArgs;

#[derive(Debug, Args)]
pub struct ReinsertArgs {
    /// The key to keep alive: `CHK@…/name`, or a signed key (`SSK@`, `USK@`,
    /// `KSK@`) whose content is in CHKs (that content is re-inserted; the
    /// signed block itself only its author can publish).
    pub key: String,
    #[command(flatten)]
    pub api: ApiArgs,
}

pub fn run(args: &ReinsertArgs) -> Result<()> {
    // A mistyped key deserves an answer without a node.
    let any: AnyUri = args.key.parse().context("that is not a valid key")?;
    if any.is_insert() {
        anyhow::bail!(
            "that is an insert key (it holds the private key); reinsert takes its request key"
        );
    }
    let client = args.api.client()?;
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} blocks eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message("fetching and re-inserting");
    let done = client
        .reinsert(&args.key, &mut |inserted, total| {
            bar.set_length(total);
            bar.set_position(inserted);
        })
        .context("reinsert failed")?;
    bar.finish_and_clear();
    if done.refreshed {
        eprintln!(
            "refreshed: {} blocks inserted again under the same key",
            done.blocks
        );
    } else {
        // Only if the content no longer encodes to its key (an older
        // encoder, say): the new key is what to hand out from now on.
        eprintln!(
            "re-inserted {} blocks, but the content now encodes to a different key; use the new one",
            done.blocks
        );
    }
    println!("{}", done.uri);
    Ok(())
}
