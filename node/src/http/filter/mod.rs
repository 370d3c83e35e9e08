//! The content filter, after Fred's FProxy: what a page from the network may
//! make the reader's browser do. HTML and CSS are parsed by well-kept parsers
//! (lol_html, cssparser) and written out again with everything that would
//! leave the node removed or pointed at the local "you are leaving Warren"
//! page; other types are passed through only when a browser shows them
//! without running or fetching anything (images, audio, video, plain text,
//! fonts), and offered as a download or as text otherwise.
//!
//! The filter is pure: bytes in, bytes out, no IO.

pub mod css;
pub mod html;
pub mod url;

/// Bumped whenever the filter's output for the same input may change, so
/// browsers do not keep a page filtered by an older version (it is part of
/// the gateway's `ETag`).
pub const FILTER_VERSION: u32 = 1;
/// Largest HTML document filtered (it is filtered whole, in memory).
pub const MAX_FILTERED_HTML: u64 = 16 << 20;
/// Largest stylesheet filtered.
pub const MAX_FILTERED_CSS: u64 = 4 << 20;

/// How much the filter may grow its input at most: percent-encoding an
/// outside link for the leaving page triples it, `<` in CSS becomes four
/// bytes. The fuzz target and the property tests hold it to this…
pub const MAX_GROWTH_FACTOR: usize = 4;
/// …plus a constant for the leaving page's prefix and such.
pub const MAX_GROWTH_SLACK: usize = 4096;

/// Why content could not be filtered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    #[error("the content is larger than the filter takes ({limit} bytes)")]
    TooLarge { limit: u64 },
    #[error("the HTML could not be filtered safely: {0}")]
    Html(String),
    #[error("the content is UTF-16 (it starts with a UTF-16 byte-order mark), which the filter does not read")]
    Utf16,
}

/// What the gateway does with a content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treatment {
    /// Parsed and rewritten by [`html::filter`].
    Html,
    /// Parsed and rewritten by [`css::sanitize`].
    Css,
    /// Shown as it is: the browser neither runs nor fetches anything for it.
    Inert,
    /// No filter: offered as a download or as text, never rendered.
    Unfiltered,
}

/// Types a browser displays without running code or loading anything else.
const INERT_TYPES: &[&str] = &[
    "text/plain",
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/avif",
    "image/bmp",
    "image/x-icon",
    "image/vnd.microsoft.icon",
    "font/woff",
    "font/woff2",
    "font/ttf",
    "font/otf",
    "application/font-woff",
];
/// Media prefixes passed through (decoders, no documents).
const INERT_PREFIXES: &[&str] = &["audio/", "video/"];

/// The treatment of `content_type` (parameters like `charset` ignored).
pub fn treatment(content_type: &str) -> Treatment {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "text/html" | "application/xhtml+xml" => Treatment::Html,
        "text/css" => Treatment::Css,
        t if INERT_TYPES.contains(&t) => Treatment::Inert,
        // Media types an `<object>`-like player would treat as a document are
        // not media; `video/` and `audio/` themselves are.
        t if INERT_PREFIXES.iter().any(|p| t.starts_with(p)) => Treatment::Inert,
        _ => Treatment::Unfiltered,
    }
}

fn refuse_utf16(input: &[u8]) -> Result<(), FilterError> {
    // A BOM outranks the declared charset in every browser: a UTF-16 page
    // would be read by the browser as something other than what was filtered.
    if input.starts_with(&[0xFE, 0xFF]) || input.starts_with(&[0xFF, 0xFE]) {
        return Err(FilterError::Utf16);
    }
    Ok(())
}

/// Filters a whole HTML document; the result is served as UTF-8.
pub fn filter_html(input: &[u8]) -> Result<Vec<u8>, FilterError> {
    if input.len() as u64 > MAX_FILTERED_HTML {
        return Err(FilterError::TooLarge {
            limit: MAX_FILTERED_HTML,
        });
    }
    refuse_utf16(input)?;
    html::filter(input)
}

/// Filters a whole stylesheet; the result is UTF-8 (invalid bytes become
/// U+FFFD, as the browser would read them).
pub fn filter_css(input: &[u8]) -> Result<Vec<u8>, FilterError> {
    if input.len() as u64 > MAX_FILTERED_CSS {
        return Err(FilterError::TooLarge {
            limit: MAX_FILTERED_CSS,
        });
    }
    refuse_utf16(input)?;
    Ok(css::sanitize(&String::from_utf8_lossy(input)).into_bytes())
}

/// The fuzz target's body: any bytes, as HTML, as a stylesheet, as a
/// `srcset` and as a URL, never panic the filter and never grow past
/// [`MAX_GROWTH_FACTOR`] × input + [`MAX_GROWTH_SLACK`]. The property tests
/// run it too.
pub fn fuzz_filter(bytes: &[u8]) {
    let bound = MAX_GROWTH_FACTOR * bytes.len() + MAX_GROWTH_SLACK;
    if let Ok(out) = filter_html(bytes) {
        assert!(
            out.len() <= bound,
            "HTML grew from {} to {}",
            bytes.len(),
            out.len()
        );
    }
    if let Ok(out) = filter_css(bytes) {
        assert!(
            out.len() <= bound,
            "CSS grew from {} to {}",
            bytes.len(),
            out.len()
        );
    }
    let text = String::from_utf8_lossy(bytes);
    let srcset = html::filter_srcset(&text);
    assert!(
        srcset.len() <= bound,
        "srcset grew from {} to {}",
        text.len(),
        srcset.len()
    );
    if let Some(rewritten) = url::rewrite(&text, url::Use::Navigate, true) {
        assert!(
            rewritten.len() <= bound,
            "URL grew from {} to {}",
            text.len(),
            rewritten.len()
        );
    }
}

#[cfg(test)]
mod tests;
