//! The gateway's content filter on arbitrary bytes (as HTML, CSS, a srcset
//! and a URL): it never panics and never grows its input past a fixed
//! factor. The body is `warren_node::http::filter::fuzz_filter`, which the
//! filter's proptests run too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    warren_node::http::filter::fuzz_filter(data);
});
