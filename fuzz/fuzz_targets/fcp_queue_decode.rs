//! The FCP queue file's JSON (sealed in `<data dir>/fcp-queue.sealed`), read at start-up:
//! decoding never panics and what decodes re-encodes to the same records.
//! The body is `warren_node::fcp::persist::fuzz_decode`, which the queue
//! file's proptests run too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    warren_node::fcp::persist::fuzz_decode(data);
});
