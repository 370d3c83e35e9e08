//! Packed noderefs inside announcements and fold offers: parsing never panics,
//! and what parses packs back to the same bytes. The body is
//! `warren_node::wire::fuzz_unpack_noderef`, which the wire proptests run too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    warren_node::wire::fuzz_unpack_noderef(data);
});
