//! The HTML filter: a policy table (which elements and attributes may stay,
//! which attributes hold URLs) applied by one walk over lol_html's spec
//! tokenizer. lol_html runs in strict mode: where the markup is ambiguous
//! enough that a tokenizer without a tree builder could disagree with the
//! browser (text-mode tags inside `<select>`, anything after `<frameset>`),
//! filtering fails and the page is not shown as HTML.
//!
//! Allowlists, not denylists: an attribute is kept only if it is named in
//! the table (so every `on*` handler, `srcdoc`, `ping`, `xlink:href`, `style`
//! tricks and attributes invented next year go), and an element only if it is
//! known; unknown elements are unwrapped (their content stays), and elements
//! that hold raw text or other documents go with their content.

use std::cell::RefCell;
use std::rc::Rc;

use lol_html::html_content::{ContentType, Element, TextChunk};
use lol_html::{doc_comments, element, text, HtmlRewriter, MemorySettings, Settings};

use super::url::{self, Use};
use super::{css, FilterError};

/// Memory lol_html may use for one document (buffered tags and such).
pub const MAX_REWRITER_MEMORY: usize = 8 << 20;
/// Longest `<style>` element filtered; a longer one is dropped whole.
pub const MAX_STYLE_ELEMENT: usize = 1 << 20;

/// Elements dropped together with everything inside them: scripts, plugin
/// content, inline documents (`svg`, `math`: foreign content the filter does
/// not parse yet), and raw-text elements whose text a browser could read as
/// markup.
const DROP_WITH_CONTENT: &[&str] = &[
    "script",
    "noscript",
    "object",
    "embed",
    "applet",
    "param",
    "svg",
    "math",
    "template",
    "xmp",
    "plaintext",
    "noembed",
    "noframes",
    "frameset",
    "frame",
    "portal",
    "fencedframe",
    "base",
    "iframe",
    "dialog",
];

/// Elements kept (with their allowed attributes).
const ALLOWED_ELEMENTS: &[&str] = &[
    "html",
    "head",
    "body",
    "title",
    "meta",
    "link",
    "style",
    "main",
    "header",
    "footer",
    "nav",
    "section",
    "article",
    "aside",
    "address",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hgroup",
    "p",
    "div",
    "span",
    "a",
    "img",
    "picture",
    "source",
    "figure",
    "figcaption",
    "ul",
    "ol",
    "li",
    "dl",
    "dt",
    "dd",
    "menu",
    "table",
    "caption",
    "colgroup",
    "col",
    "thead",
    "tbody",
    "tfoot",
    "tr",
    "td",
    "th",
    "pre",
    "code",
    "blockquote",
    "q",
    "cite",
    "em",
    "strong",
    "b",
    "i",
    "u",
    "s",
    "small",
    "sub",
    "sup",
    "br",
    "hr",
    "wbr",
    "abbr",
    "dfn",
    "kbd",
    "samp",
    "var",
    "mark",
    "time",
    "data",
    "del",
    "ins",
    "ruby",
    "rt",
    "rp",
    "bdi",
    "bdo",
    "details",
    "summary",
    "center",
    "font",
    "big",
    "tt",
    "strike",
    "label",
    "fieldset",
    "legend",
    "form",
    "input",
    "button",
    "select",
    "option",
    "optgroup",
    "textarea",
    "output",
    "progress",
    "meter",
    "video",
    "audio",
    "track",
    "map",
    "area",
    "search",
];

/// Attributes any kept element may carry (besides `aria-*` and `data-*`).
const GLOBAL_ATTRIBUTES: &[&str] = &[
    "id",
    "class",
    "title",
    "lang",
    "dir",
    "hidden",
    "tabindex",
    "accesskey",
    "role",
    "translate",
    "spellcheck",
    "align",
    "valign",
    "width",
    "height",
    "border",
    "bgcolor",
    "color",
    "face",
    "size",
    "nowrap",
    "name",
    "type",
    "value",
    "alt",
    "open",
    "start",
    "reversed",
    "colspan",
    "rowspan",
    "headers",
    "scope",
    "span",
    "cellpadding",
    "cellspacing",
    "summary",
    "abbr",
    "datetime",
    "label",
    "for",
    "placeholder",
    "disabled",
    "checked",
    "selected",
    "multiple",
    "readonly",
    "required",
    "maxlength",
    "minlength",
    "min",
    "max",
    "step",
    "pattern",
    "rows",
    "cols",
    "wrap",
    "method",
    "enctype",
    "autocomplete",
    "controls",
    "loop",
    "muted",
    "preload",
    "playsinline",
    "kind",
    "srclang",
    "default",
    "sizes",
    "media",
    "hreflang",
    "target",
    "shape",
    "coords",
    "loading",
    "decoding",
    "charset",
    "high",
    "low",
    "optimum",
    "list",
    "download",
    "inputmode",
    "popover",
    "popovertarget",
    "clear",
    "frame",
    "rules",
    "char",
    "charoff",
    "compact",
    "hspace",
    "vspace",
    "ismap",
];

/// Attributes that hold one URL, and how the browser uses it.
const URL_ATTRIBUTES: &[(&str, Use)] = &[
    ("href", Use::Navigate),
    ("src", Use::Load),
    ("poster", Use::Load),
    ("background", Use::Load),
    ("cite", Use::Load),
    ("usemap", Use::Load),
    ("action", Use::Submit),
    ("formaction", Use::Submit),
];

/// Elements whose `href` the browser loads by itself (so it is a load, not a link).
const HREF_IS_LOAD: &[&str] = &["link"];

/// `<link rel>` values kept: stylesheets and icons load from the site,
/// the rest are plain relations. (No prefetch, preload, preconnect,
/// dns-prefetch, prerender, modulepreload, manifest, pingback.)
const LINK_RELS: &[&str] = &[
    "stylesheet",
    "icon",
    "shortcut",
    "alternate",
    "author",
    "license",
    "help",
    "next",
    "prev",
    "previous",
    "search",
    "start",
    "contents",
    "index",
    "bookmark",
    "canonical",
    "first",
    "last",
    "up",
    "apple-touch-icon",
];

/// `<meta name>` values kept; every `http-equiv` (refresh, set-cookie,
/// content-security-policy…) and `name=referrer` goes.
const META_NAMES: &[&str] = &[
    "viewport",
    "description",
    "keywords",
    "author",
    "generator",
    "color-scheme",
    "theme-color",
];

fn listed(name: &str, list: &[&str]) -> bool {
    list.iter().any(|n| name.eq_ignore_ascii_case(n))
}

/// Filters an HTML document. Output bytes are UTF-8 if the input was.
pub fn filter(input: &[u8]) -> Result<Vec<u8>, FilterError> {
    let mut output = Vec::with_capacity(input.len());
    let style = Rc::new(RefCell::new(StyleBuffer::default()));
    let style_text = style.clone();
    let settings = Settings::new()
        .append_element_content_handler(element!("*", |el| {
            filter_element(el);
            Ok(())
        }))
        .append_element_content_handler(text!("style", move |chunk| {
            filter_style_text(&style_text, chunk);
            Ok(())
        }))
        .append_document_content_handler(doc_comments!(|comment| {
            comment.remove();
            Ok(())
        }))
        .with_memory_settings(
            MemorySettings::new().with_max_allowed_memory_usage(MAX_REWRITER_MEMORY),
        )
        .with_strict(true);
    let mut rewriter = HtmlRewriter::new(settings, |bytes: &[u8]| output.extend_from_slice(bytes));
    rewriter
        .write(input)
        .and_then(|()| rewriter.end())
        .map_err(|err| FilterError::Html(err.to_string()))?;
    Ok(output)
}

/// The text of the `<style>` element being read, gathered across chunks.
#[derive(Default)]
struct StyleBuffer {
    text: String,
    too_long: bool,
}

fn filter_style_text(buffer: &Rc<RefCell<StyleBuffer>>, chunk: &mut TextChunk<'_>) {
    let mut buffer = buffer.borrow_mut();
    if buffer.text.len() + chunk.as_str().len() > MAX_STYLE_ELEMENT {
        buffer.too_long = true;
    } else if !buffer.too_long {
        buffer.text.push_str(chunk.as_str());
    }
    chunk.remove();
    if chunk.last_in_text_node() {
        let sheet = std::mem::take(&mut *buffer);
        if !sheet.too_long {
            chunk.replace(&css::sanitize(&sheet.text), ContentType::Html);
        }
    }
}

fn filter_element(el: &mut Element<'_, '_>) {
    let tag = el.tag_name();
    if listed(&tag, DROP_WITH_CONTENT) {
        el.remove();
        return;
    }
    if !listed(&tag, ALLOWED_ELEMENTS) {
        el.remove_and_keep_content();
        return;
    }
    if (tag == "meta" && !meta_allowed(el)) || (tag == "link" && !link_allowed(el)) {
        el.remove();
        return;
    }
    filter_attributes(el, &tag);
    if tag == "link" && !el.has_attribute("href") {
        // Its URL went: nothing left to link.
        el.remove();
    }
}

fn meta_allowed(el: &Element<'_, '_>) -> bool {
    if el.has_attribute("http-equiv") {
        return false;
    }
    el.has_attribute("charset")
        || el
            .get_attribute("name")
            .is_some_and(|n| listed(n.trim(), META_NAMES))
}

fn link_allowed(el: &Element<'_, '_>) -> bool {
    let rel = el
        .get_attribute("rel")
        .map(|r| decode(&r))
        .unwrap_or_default();
    let mut rels = rel.split_ascii_whitespace().peekable();
    rels.peek().is_some() && rels.all(|r| listed(r, LINK_RELS))
}

/// HTML character references decoded as in an attribute value.
fn decode(raw: &str) -> String {
    htmlize::unescape_attribute(raw).into_owned()
}

/// A value for `set_attribute`, which escapes quotes but writes `&` as is:
/// what the browser reads back is exactly `value`.
fn encode(value: &str) -> String {
    value.replace('&', "&amp;")
}

fn filter_attributes(el: &mut Element<'_, '_>, tag: &str) {
    let attributes: Vec<(String, String)> = el
        .attributes()
        .iter()
        .map(|a| (a.name(), a.value()))
        .collect();
    for (name, raw) in attributes {
        match filter_attribute(tag, &name, &raw) {
            Keep::Unchanged => {}
            Keep::Drop => el.remove_attribute(&name),
            Keep::As(value) => {
                if el.set_attribute(&name, &encode(&value)).is_err() {
                    el.remove_attribute(&name);
                }
            }
        }
    }
}

enum Keep {
    Unchanged,
    Drop,
    As(String),
}

fn filter_attribute(tag: &str, name: &str, raw: &str) -> Keep {
    let data_image = matches!(tag, "img" | "source" | "input" | "video" | "link");
    if let Some((_, usage)) = URL_ATTRIBUTES.iter().find(|(n, _)| *n == name) {
        let usage = if name == "href" && listed(tag, HREF_IS_LOAD) {
            Use::Load
        } else {
            *usage
        };
        return url::rewrite(&decode(raw), usage, data_image).map_or(Keep::Drop, Keep::As);
    }
    match name {
        "srcset" | "imagesrcset" => Keep::As(filter_srcset(&decode(raw))),
        "style" => Keep::As(css::sanitize(&decode(raw))),
        "rel" if tag == "a" || tag == "area" || tag == "link" => Keep::Unchanged,
        _ if name.starts_with("aria-") || name.starts_with("data-") => Keep::Unchanged,
        _ if listed(name, GLOBAL_ATTRIBUTES) => Keep::Unchanged,
        _ => Keep::Drop,
    }
}

/// A `srcset`, parsed as the HTML spec parses it, with every candidate whose
/// URL leaves the node dropped.
pub fn filter_srcset(value: &str) -> String {
    let mut kept = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == ',');
        if rest.is_empty() {
            break;
        }
        let url_end = rest
            .find(|c: char| c.is_ascii_whitespace())
            .unwrap_or(rest.len());
        let (mut candidate_url, after) = rest.split_at(url_end);
        let mut descriptors = "";
        if candidate_url.ends_with(',') {
            candidate_url = candidate_url.trim_end_matches(',');
            rest = after;
        } else {
            // Descriptors run to the next comma outside parentheses.
            let mut depth = 0usize;
            let mut end = after.len();
            for (i, c) in after.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => depth = depth.saturating_sub(1),
                    ',' if depth == 0 => {
                        end = i;
                        break;
                    }
                    _ => {}
                }
            }
            descriptors = after[..end].trim();
            rest = &after[end..];
        }
        if !descriptors
            .split_ascii_whitespace()
            .all(is_srcset_descriptor)
        {
            // The browser drops a candidate with descriptors it cannot parse.
            continue;
        }
        if let Some(local) = url::rewrite(candidate_url, Use::Load, true) {
            kept.push(if descriptors.is_empty() {
                local
            } else {
                format!("{local} {descriptors}")
            });
        }
    }
    kept.join(", ")
}

/// `2x`, `640w`, `1.5x`: a number and a unit letter, nothing else.
fn is_srcset_descriptor(text: &str) -> bool {
    let Some((number, unit)) = text.split_at_checked(text.len().saturating_sub(1)) else {
        return false;
    };
    matches!(unit, "w" | "x" | "h")
        && !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit() || c == '.')
}
