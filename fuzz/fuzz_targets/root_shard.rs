//! Fuzzes a root shard's index and payload; the body is shared with the crate's proptests.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    warren_crypto::fuzzing::read_root_shard(data);
});
