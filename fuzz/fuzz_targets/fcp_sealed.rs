//! The FCP queue's sealed files (the queue, kept download blocks, spooled
//! uploads), read back from disk: opening never panics, whatever the bytes,
//! and nothing but what the vault sealed opens. The body is
//! `warren_node::fcp::vault::fuzz_open`, which the vault's proptests run too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    warren_node::fcp::vault::fuzz_open(data);
});
