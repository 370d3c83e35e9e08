//! Signed keys for clients: publishing content under an `SSK@`, `USK@` or
//! `KSK@` insert key, and resolving any request key to the content it names.
//!
//! Content itself is always inserted as CHKs (a file, or a site's manifest);
//! the SSK block is a signed pointer to that CHK (`SskPayload::Chk`). A USK's
//! newest edition is found with [`EditionSearch`]: O(log E) SSK fetches.

use warren_crypto::ssk::{EditionSearch, SearchStep};
use warren_crypto::{AnyUri, ChkUri, Edition, SskBlock, SskInsertUri, SskPayload, SskUri, UskUri};

use crate::client::ClientError;
use crate::driver::{NodeHandle, RequestError};
use crate::routing::FetchError;

/// Response header of `/api/fetch` naming the USK edition found.
pub const EDITION_HEADER: &str = "x-warren-edition";

/// What a request key resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Fetch this CHK (with the request key's path inside it, if any).
    Chk(ChkUri),
    /// The content was small enough to live in the SSK block itself.
    Inline(Vec<u8>),
}

/// A resolved request key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub content: Content,
    /// For a USK: the edition found.
    pub edition: Option<u64>,
}

/// What a publish made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The request URI readers use (`SSK@…/name`, `USK@…/name/N` or `KSK@name`).
    pub uri: String,
    /// For a USK: the edition inserted.
    pub edition: Option<u64>,
}

fn insert_key_refused() -> ClientError {
    ClientError::BadRequest(
        "this is an insert key (it holds the private key); fetch with its request key".into(),
    )
}

/// Fetches one SSK block; `Ok(None)` when the network does not have it.
async fn fetch_block(node: &NodeHandle, uri: &SskUri) -> Result<Option<SskBlock>, ClientError> {
    match node.fetch_ssk_block(uri.routing_key()).await {
        Ok(block) => Ok(Some(block)),
        // A probe that times out counts as a miss: the search goes on past it.
        Err(RequestError::Fetch(
            FetchError::DataNotFound | FetchError::RouteNotFound | FetchError::Timeout,
        )) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

fn content_of(block: &SskBlock, uri: &SskUri) -> Result<Content, ClientError> {
    let payload = block
        .decode(&uri.crypto)
        .map_err(|e| ClientError::NotFound(format!("the SSK block does not decode: {e}")))?;
    Ok(match payload {
        SskPayload::Chk(chk) => match &uri.path {
            Some(path) => Content::Chk(chk.with_path(path.clone())),
            None => Content::Chk(chk),
        },
        SskPayload::Data(data) => Content::Inline(data),
    })
}

/// The newest edition of `usk` the network holds at or after its edition
/// (0 for `-1`), with its block, and the SSK fetches it took.
pub async fn newest_edition(
    node: &NodeHandle,
    usk: &UskUri,
) -> Result<(Option<(u64, SskBlock)>, u32), ClientError> {
    let mut search = EditionSearch::new(usk.edition.start());
    let mut best: Option<(u64, SskBlock)> = None;
    loop {
        match search.next_step() {
            SearchStep::Probe(edition) => {
                let block = fetch_block(node, &usk.edition_uri(edition)).await?;
                search.record(edition, block.is_some());
                if let Some(block) = block {
                    if best.as_ref().is_none_or(|(e, _)| *e < edition) {
                        best = Some((edition, block));
                    }
                }
            }
            SearchStep::Done(newest) => {
                let found = best.filter(|(e, _)| Some(*e) == newest);
                return Ok((found, search.probes()));
            }
        }
    }
}

/// Resolves a request key (any type) to the content it names.
pub async fn resolve(node: &NodeHandle, uri: &AnyUri) -> Result<Resolved, ClientError> {
    let ssk = match uri {
        AnyUri::Chk(chk) => {
            return Ok(Resolved {
                content: Content::Chk(chk.clone()),
                edition: None,
            })
        }
        AnyUri::SskInsert(_) | AnyUri::UskInsert(_) => return Err(insert_key_refused()),
        AnyUri::Ssk(ssk) => ssk.clone(),
        AnyUri::Ksk(ksk) => ksk.request_uri(),
        AnyUri::Usk(usk) => {
            let (found, probes) = newest_edition(node, usk).await?;
            tracing::debug!(probes, found = ?found.as_ref().map(|f| f.0), "USK edition search");
            let Some((edition, block)) = found else {
                return Err(ClientError::NotFound(match usk.edition {
                    Edition::Latest => "no edition of this USK was found".into(),
                    Edition::AtLeast(n) => format!("no edition {n} or later of this USK was found"),
                }));
            };
            let ssk = usk.edition_uri(edition).with_path(usk.path.clone());
            return Ok(Resolved {
                content: content_of(&block, &ssk)?,
                edition: Some(edition),
            });
        }
    };
    let block = fetch_block(node, &ssk).await?.ok_or_else(|| {
        ClientError::NotFound(
            "data not found: no node on the route holds this signed key's block".into(),
        )
    })?;
    Ok(Resolved {
        content: content_of(&block, &ssk)?,
        edition: None,
    })
}

/// The request URI readers would use for what `target` (an insert key)
/// publishes, without publishing anything: `GetCHKOnly` under a signed key
/// (pyfreenet's `invertprivate` asks this way).
pub fn request_uri_of(target: &AnyUri) -> Result<String, ClientError> {
    Ok(insert_and_request(target)?.1)
}

/// The SSK insert key `target` writes, the request URI readers use, and
/// the USK edition.
fn insert_and_request(target: &AnyUri) -> Result<(SskInsertUri, String, Option<u64>), ClientError> {
    Ok(match target {
        AnyUri::SskInsert(key) => (key.clone(), key.request_uri().to_string(), None),
        AnyUri::Ksk(ksk) => (ksk.insert_uri(), ksk.to_string(), None),
        AnyUri::UskInsert(key) => (
            key.edition_insert_uri(),
            key.request_uri().to_string(),
            Some(key.edition),
        ),
        _ => {
            return Err(ClientError::BadRequest(
                "publish needs an insert key: SSK@ or USK@ with its private key (from `warren keys new`), or KSK@name".into(),
            ))
        }
    })
}

/// Publishes `content` (a CHK already inserted) under the insert key
/// `target`: an `SSK@` or `USK@` insert URI, or a `KSK@`. With
/// `next_edition`, a USK goes to the edition after the newest the network
/// holds (at or after the key's own edition).
pub async fn publish(
    node: &NodeHandle,
    target: &AnyUri,
    content: ChkUri,
    next_edition: bool,
) -> Result<Published, ClientError> {
    let mut target = target.clone();
    if let (AnyUri::UskInsert(key), true) = (&mut target, next_edition) {
        let request = key.request_uri();
        let (found, _) = newest_edition(node, &request).await?;
        if let Some((newest, block)) = found {
            // The newest edition already points to this content (a client
            // putting the same site again): that edition is the answer, as
            // Fred's USK inserter does, rather than a copy under a new one.
            let same = block.decode(&request.crypto).is_ok_and(
                |payload| matches!(payload, SskPayload::Chk(chk) if chk == ChkUri { path: None, ..content.clone() }),
            );
            if same {
                return Ok(Published {
                    uri: request.with_edition(Edition::AtLeast(newest)).to_string(),
                    edition: Some(newest),
                });
            }
            key.edition = newest + 1;
        }
    }
    let (insert, request, edition) = insert_and_request(&target)?;
    let block = SskBlock::encode(
        &insert.private,
        &insert.crypto,
        &insert.hashed_name(),
        &SskPayload::Chk(ChkUri {
            path: None,
            ..content
        }),
    )
    .map_err(|e| ClientError::BadRequest(e.to_string()))?;
    node.insert_ssk_block(block).await?;
    Ok(Published {
        uri: request,
        edition,
    })
}
