//! FCP 2.0 messages from local clients: decoding never panics, feeding the
//! bytes in pieces never changes the result, and what decodes re-encodes.
//! The body is `warren_node::fcp::message::fuzz_decode`, which the FCP
//! parser's proptests run too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    warren_node::fcp::message::fuzz_decode(data);
});
