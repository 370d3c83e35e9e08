//! Routing messages from peers: decoding never panics, and what decodes
//! re-encodes to the same message. The body is `warren_node::wire::fuzz_decode`,
//! which the wire proptests run too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    warren_node::wire::fuzz_decode(data);
});
