//! Fetching one splitfile: a window of segments, the blocks each still needs,
//! and erasure decoding once any `k` of a segment's blocks are in.

use std::collections::{HashMap, VecDeque};

use crate::block::{ChkBlock, BLOCK_PAYLOAD, SEALED_LEN};
use crate::key::{ChkKey, CryptoKey, RoutingKey};
use crate::metadata::{Segment, SplitfileManifest};

use super::fec::{self, SHARD_LEN};
use super::fetcher::{FetchError, Part};
#[cfg(doc)]
use super::FETCH_HELD_BLOCKS;
use super::FETCH_WINDOW_SEGMENTS;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// Not asked for yet.
    Idle,
    /// Asked for, no answer yet.
    Pending,
    /// Reported not found.
    Missing,
    /// Answered while memory was at its bound and handed back to the
    /// driver, which keeps it: asked for again (and answered at once) when
    /// there is room.
    Parked,
    /// Decoded and kept.
    Have,
}

/// Where an answered block goes: segment number and shard (data, then check).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    segment: usize,
    shard: usize,
}

#[derive(Debug)]
struct SegmentState {
    index: usize,
    /// Global index of the segment's first data block.
    first_block: u64,
    data_count: usize,
    status: Vec<Status>,
    /// Plaintext shards, padded to a full payload; at most `data_count` kept.
    shards: Vec<Option<Vec<u8>>>,
    have: usize,
    pending: usize,
    /// The segment's content once decoded, waiting for earlier segments.
    decoded: Option<Vec<u8>>,
}

impl SegmentState {
    fn new(index: usize, first_block: u64, segment: &Segment) -> Self {
        let total = segment.data.len() + segment.check.len();
        SegmentState {
            index,
            first_block,
            data_count: segment.data.len(),
            status: vec![Status::Idle; total],
            shards: vec![None; total],
            have: 0,
            pending: 0,
            decoded: None,
        }
    }

    /// Blocks not yet known to be lost: found, pending, or still to ask for.
    fn available(&self) -> usize {
        self.status
            .iter()
            .filter(|&&s| s != Status::Missing)
            .count()
    }
}

/// The state of one splitfile being fetched.
#[derive(Debug)]
pub(crate) struct Download {
    manifest: SplitfileManifest,
    part: Part,
    /// Segments being worked on, lowest first; the front is the next to output.
    active: VecDeque<SegmentState>,
    /// The next segment to activate, and the global index of its first data block.
    next_segment: usize,
    next_first_block: u64,
    /// Requests in flight: a key may fill several slots (identical blocks).
    pending: HashMap<RoutingKey, Vec<Slot>>,
    /// Blocks (data or check) the network reported missing and the erasure
    /// code rebuilt (and checked against the manifest), for the driver to heal;
    /// at most [`MAX_REBUILT`] wait.
    rebuilt: Vec<ChkBlock>,
    /// Blocks of content held for segments behind the front one, at most.
    held_limit: usize,
    /// Answers handed back (over `held_limit`) for the driver to keep.
    parked: Vec<ChkBlock>,
    /// Segments asked for at once (at most [`FETCH_WINDOW_SEGMENTS`]).
    lookahead: usize,
}

/// Rebuilt blocks kept for healing until the driver takes them (a segment's
/// worth); past it the rest of a segment's are not kept.
pub(crate) const MAX_REBUILT: usize = 128;

fn key_of(manifest: &SplitfileManifest, slot: Slot) -> &ChkKey {
    let segment = &manifest.segments[slot.segment];
    segment
        .data
        .get(slot.shard)
        .unwrap_or_else(|| &segment.check[slot.shard - segment.data.len()])
}

impl Download {
    /// Starts a download of a manifest that has passed validation.
    /// It holds at most `held_limit` blocks of content for the segments
    /// behind the front one (normally [`FETCH_HELD_BLOCKS`]).
    pub(crate) fn with_held_limit(
        manifest: SplitfileManifest,
        part: Part,
        held_limit: usize,
    ) -> Self {
        let mut download = Download {
            manifest,
            part,
            active: VecDeque::new(),
            next_segment: 0,
            next_first_block: 0,
            pending: HashMap::new(),
            rebuilt: Vec::new(),
            held_limit,
            parked: Vec::new(),
            lookahead: FETCH_WINDOW_SEGMENTS,
        };
        download.fill_window();
        download
    }

    fn fill_window(&mut self) {
        while self.active.len() < FETCH_WINDOW_SEGMENTS
            && self.next_segment < self.manifest.segments.len()
        {
            let segment = &self.manifest.segments[self.next_segment];
            self.active.push_back(SegmentState::new(
                self.next_segment,
                self.next_first_block,
                segment,
            ));
            self.next_first_block += segment.data.len() as u64;
            self.next_segment += 1;
        }
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.active.is_empty()
    }

    fn state_mut(&mut self, segment: usize) -> Option<&mut SegmentState> {
        self.active.iter_mut().find(|s| s.index == segment)
    }

    /// Blocks of content in memory: shards held and segments decoded but
    /// not yet taken (a decoded segment holds all its data blocks' worth).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.active.iter().map(|state| state.have).sum()
    }

    /// As [`Self::held`], for the segments behind the front one only (the
    /// front is always taken in, so the bound is on these).
    fn held_behind_front(&self) -> usize {
        self.active.iter().skip(1).map(|state| state.have).sum()
    }

    /// Asks for blocks of at most `segments` segments at once (1 to
    /// [`FETCH_WINDOW_SEGMENTS`]); blocks already asked for stay asked for.
    pub(crate) fn set_lookahead(&mut self, segments: usize) {
        self.lookahead = segments.clamp(1, FETCH_WINDOW_SEGMENTS);
    }

    #[cfg(test)]
    pub(crate) fn held_blocks(&self) -> usize {
        self.held()
    }

    /// Up to `max` new keys to request: the front segment's needs first, data
    /// blocks before check blocks, never more than would complete a segment.
    /// Answers parked with the driver come first (they are answered at once)
    /// but, past the front segment, only as many as memory has room for;
    /// keys never asked for are asked for in every segment of the window
    /// whatever memory holds (their answers may be parked in turn), so the
    /// requests in flight do not wait for the front segment.
    pub(crate) fn wanted(&mut self, max: usize) -> Vec<RoutingKey> {
        let mut out = Vec::new();
        let mut unparked_room = self.held_limit.saturating_sub(self.held_behind_front());
        for position in 0..self.active.len().min(self.lookahead) {
            let state = &mut self.active[position];
            if state.decoded.is_some() {
                continue;
            }
            let mut need = state.data_count.saturating_sub(state.have + state.pending);
            let mut parked = state
                .status
                .iter()
                .filter(|&&s| s == Status::Parked)
                .count();
            for pass in [Status::Parked, Status::Idle] {
                if pass == Status::Idle {
                    // Parked answers not asked for this time still count:
                    // other blocks are not asked for in their place.
                    need = need.saturating_sub(parked);
                }
                let mut shard = 0;
                while need > 0 && shard < state.status.len() && out.len() < max {
                    if state.status[shard] == pass
                        && (position == 0 || pass == Status::Idle || unparked_room > 0)
                    {
                        if pass == Status::Parked {
                            parked -= 1;
                            if position > 0 {
                                unparked_room -= 1;
                            }
                        }
                        let slot = Slot {
                            segment: state.index,
                            shard,
                        };
                        state.status[shard] = Status::Pending;
                        state.pending += 1;
                        need -= 1;
                        let routing = key_of(&self.manifest, slot).routing;
                        let slots = self.pending.entry(routing).or_default();
                        if slots.is_empty() {
                            out.push(routing);
                        }
                        slots.push(slot);
                    }
                    shard += 1;
                }
            }
        }
        out
    }

    /// Takes a block; returns whether it was one this download asked for.
    pub(crate) fn on_block(&mut self, block: &ChkBlock) -> Result<bool, FetchError> {
        let routing = block.routing_key();
        let Some(slots) = self.pending.remove(&routing) else {
            return Ok(false);
        };
        let front = self.active.front().map(|state| state.index);
        if self.held_behind_front() >= self.held_limit
            && !slots.iter().any(|s| Some(s.segment) == front)
        {
            // Memory is at its bound while the front segment waits: the
            // driver keeps the block (as it came) and gives it back when it
            // is asked for again, once the front has moved on.
            for slot in slots {
                if let Some(state) = self.state_mut(slot.segment) {
                    if state.status[slot.shard] == Status::Pending {
                        state.status[slot.shard] = Status::Parked;
                        state.pending -= 1;
                    }
                }
            }
            self.parked.push(block.clone());
            return Ok(true);
        }
        // Decoded straight into what becomes the shard (capacity for the
        // sealed form), so the common case of one slot copies nothing more.
        let mut plain = Vec::with_capacity(SEALED_LEN.max(SHARD_LEN));
        let mut decoded_with: Option<CryptoKey> = None;
        let mut targets: Vec<(Slot, bool)> = Vec::new();
        for slot in slots {
            let key = key_of(&self.manifest, slot);
            if decoded_with.as_ref() != Some(&key.crypto) {
                block
                    .decode_into(&key.crypto, &mut plain)
                    .map_err(|source| FetchError::BadBlock {
                        part: self.part,
                        source,
                    })?;
                decoded_with = Some(key.crypto.clone());
            }
            let expected = self.expected_len(slot);
            if plain.len() != expected {
                return Err(FetchError::WrongBlockLength {
                    part: self.part,
                    expected,
                    actual: plain.len(),
                });
            }
            targets.push((slot, true));
        }
        // The same block may stand in other slots not asked for yet.
        for state in &self.active {
            for (shard, status) in state.status.iter().enumerate() {
                let slot = Slot {
                    segment: state.index,
                    shard,
                };
                if matches!(status, Status::Idle | Status::Missing | Status::Parked)
                    && key_of(&self.manifest, slot).routing == routing
                    && decoded_with.as_ref() == Some(&key_of(&self.manifest, slot).crypto)
                    && plain.len() == self.expected_len(slot)
                {
                    targets.push((slot, false));
                }
            }
        }
        let mut touched = Vec::with_capacity(targets.len());
        let mut plain = Some(plain);
        let last = targets.len().saturating_sub(1);
        for (i, (slot, was_pending)) in targets.into_iter().enumerate() {
            let shard = if i == last {
                plain.take().unwrap_or_default()
            } else {
                plain.clone().unwrap_or_default()
            };
            touched.push(slot.segment);
            self.fill(slot, shard, was_pending);
        }
        touched.dedup();
        for segment in touched {
            self.try_decode(segment)?;
        }
        Ok(true)
    }

    /// Bytes of plaintext the block in `slot` must hold.
    fn expected_len(&self, slot: Slot) -> usize {
        let Some(state) = self.active.iter().find(|s| s.index == slot.segment) else {
            return BLOCK_PAYLOAD;
        };
        if slot.shard >= state.data_count {
            return BLOCK_PAYLOAD;
        }
        let start = (state.first_block + slot.shard as u64) * BLOCK_PAYLOAD as u64;
        self.manifest
            .len
            .saturating_sub(start)
            .min(BLOCK_PAYLOAD as u64) as usize
    }

    fn fill(&mut self, slot: Slot, mut shard: Vec<u8>, was_pending: bool) {
        let Some(state) = self.state_mut(slot.segment) else {
            return;
        };
        if state.decoded.is_some() || state.status[slot.shard] == Status::Have {
            return;
        }
        if was_pending {
            state.pending -= 1;
        }
        if state.have == state.data_count {
            // Enough already: a pending answer that arrived late.
            state.status[slot.shard] = Status::Idle;
            return;
        }
        shard.resize(SHARD_LEN, 0);
        state.shards[slot.shard] = Some(shard);
        state.status[slot.shard] = Status::Have;
        state.have += 1;
    }

    /// Records that a block could not be found; fails once a segment can no
    /// longer gather enough blocks.
    pub(crate) fn on_missing(&mut self, routing: RoutingKey) -> Result<bool, FetchError> {
        let Some(slots) = self.pending.remove(&routing) else {
            return Ok(false);
        };
        for slot in slots {
            if let Some(state) = self.state_mut(slot.segment) {
                if state.status[slot.shard] == Status::Pending {
                    state.status[slot.shard] = Status::Missing;
                    state.pending -= 1;
                }
            }
        }
        // Identical blocks elsewhere in the window are just as missing.
        let manifest = &self.manifest;
        for state in &mut self.active {
            for shard in 0..state.status.len() {
                let slot = Slot {
                    segment: state.index,
                    shard,
                };
                if state.status[shard] == Status::Idle && key_of(manifest, slot).routing == routing
                {
                    state.status[shard] = Status::Missing;
                }
            }
        }
        let segments = self.manifest.segments.len();
        for state in &self.active {
            if state.decoded.is_none() && state.available() < state.data_count {
                let blocks = state.status.len();
                return Err(FetchError::SegmentUnrecoverable {
                    part: self.part,
                    segment: state.index,
                    segments,
                    blocks,
                    found: state.have,
                    missing: blocks - state.available(),
                    available: state.available(),
                    needed: state.data_count,
                });
            }
        }
        Ok(true)
    }

    /// Decodes a segment once it holds `data_count` shards.
    fn try_decode(&mut self, segment: usize) -> Result<(), FetchError> {
        let part = self.part;
        let Some(position) = self.active.iter().position(|s| s.index == segment) else {
            return Ok(());
        };
        let state = &self.active[position];
        if state.decoded.is_some() || state.have < state.data_count {
            return Ok(());
        }
        let data_count = state.data_count;
        let check_count = state.status.len() - data_count;
        let mut data = Vec::new();
        let mut check = Vec::new();
        for (shard, held) in state.shards.iter().enumerate() {
            if let Some(bytes) = held {
                if shard < data_count {
                    data.push((shard, bytes.as_slice()));
                } else {
                    check.push((shard - data_count, bytes.as_slice()));
                }
            }
        }
        let restored = fec::recover(data_count, check_count, &data, &check).map_err(|source| {
            FetchError::Fec {
                part,
                segment,
                source,
            }
        })?;
        let (content, rebuilt) = self.assemble(position, restored)?;
        let room = MAX_REBUILT.saturating_sub(self.rebuilt.len());
        self.rebuilt.extend(rebuilt.into_iter().take(room));
        let state = &mut self.active[position];
        state.shards = Vec::new();
        state.decoded = Some(content);
        // Late answers for this segment are no longer wanted.
        self.pending.retain(|_, slots| {
            slots.retain(|slot| slot.segment != segment);
            !slots.is_empty()
        });
        Ok(())
    }

    /// Joins a segment's data shards, held or recovered, into its content.
    /// Also returns the rebuilt blocks of data shards reported missing.
    fn assemble(
        &self,
        position: usize,
        restored: Vec<(usize, Vec<u8>)>,
    ) -> Result<(Vec<u8>, Vec<ChkBlock>), FetchError> {
        let part = self.part;
        let state = &self.active[position];
        let segment = state.index;
        let mut recovered: Vec<Option<Vec<u8>>> = vec![None; state.data_count];
        for (index, shard) in restored {
            recovered[index] = Some(shard);
        }
        let total: usize = (0..state.data_count)
            .map(|shard| self.expected_len(Slot { segment, shard }))
            .sum();
        let mut content = Vec::with_capacity(total);
        let mut rebuilt = Vec::new();
        // Where each data shard starts in `content` and how long it is.
        let mut spans = Vec::with_capacity(state.data_count);
        for (index, slot) in recovered.into_iter().enumerate() {
            let len = self.expected_len(Slot {
                segment,
                shard: index,
            });
            spans.push((content.len(), len));
            if let Some(shard) = slot {
                // Recovered blocks must re-encode to the keys the manifest lists,
                // so every fetcher gets the same content whatever blocks it found.
                let (block, key) = ChkBlock::encode(&shard[..len])
                    .map_err(|source| FetchError::BadBlock { part, source })?;
                if key.routing != self.manifest.segments[segment].data[index].routing {
                    return Err(FetchError::InconsistentSegment { part, segment });
                }
                if state.status[index] == Status::Missing {
                    rebuilt.push(block);
                }
                content.extend_from_slice(&shard[..len]);
            } else if let Some(shard) = &state.shards[index] {
                content.extend_from_slice(&shard[..len]);
            }
        }
        let check_missing = state.status[state.data_count..].contains(&Status::Missing);
        if check_missing {
            rebuilt.extend(self.rebuild_check(position, &content, &spans)?);
        }
        Ok((content, rebuilt))
    }

    /// The check blocks of a decoded segment that the network reported
    /// missing, made again from its data (the encoding is deterministic) and
    /// checked against the manifest's keys, so they can be healed too: a
    /// segment that lost check blocks has less margin for the next loss.
    fn rebuild_check(
        &self,
        position: usize,
        content: &[u8],
        spans: &[(usize, usize)],
    ) -> Result<Vec<ChkBlock>, FetchError> {
        let part = self.part;
        let state = &self.active[position];
        let segment = state.index;
        let keys = &self.manifest.segments[segment].check;
        let shards = spans
            .iter()
            .map(|&(start, len)| &content[start..start + len]);
        let mut made = Vec::with_capacity(keys.len());
        let mut failure = None;
        fec::FecEncoder::default()
            .encode(shards, keys.len(), |shard| match ChkBlock::encode(shard) {
                Ok((block, key)) => made.push((block, key)),
                Err(source) => failure = Some(source),
            })
            .map_err(|source| FetchError::Fec {
                part,
                segment,
                source,
            })?;
        if let Some(source) = failure {
            return Err(FetchError::BadBlock { part, source });
        }
        let mut rebuilt = Vec::new();
        for (index, (block, key)) in made.into_iter().enumerate() {
            let Some(expected) = keys.get(index) else {
                break;
            };
            if state.status[state.data_count + index] != Status::Missing {
                continue;
            }
            // A manifest whose check keys do not match its data is not
            // healed from: the blocks it names are someone else's.
            if key.routing != expected.routing {
                return Err(FetchError::InconsistentSegment { part, segment });
            }
            rebuilt.push(block);
        }
        Ok(rebuilt)
    }

    /// Answers handed back since the last call, for the driver to keep out
    /// of memory until it is asked for them again (at most the requests it
    /// had in flight).
    pub(crate) fn take_parked(&mut self) -> Vec<ChkBlock> {
        core::mem::take(&mut self.parked)
    }

    /// Blocks rebuilt since the last call that the network had lost.
    pub(crate) fn take_rebuilt(&mut self) -> Vec<ChkBlock> {
        core::mem::take(&mut self.rebuilt)
    }

    /// The next segment's content, in order, once decoded.
    pub(crate) fn take_decoded(&mut self) -> Option<Vec<u8>> {
        let content = self.active.front_mut()?.decoded.take()?;
        self.active.pop_front();
        self.fill_window();
        Some(content)
    }
}
