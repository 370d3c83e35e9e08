//! The filter against a table of attacks (tricks from public XSS and CSS
//! exfiltration cheat sheets, in our own words), and properties over any input.

use proptest::prelude::*;

use super::*;

/// Each snippet tries to make the browser run code or call out to
/// `t.example`; after filtering, none of the listed text may remain.
const ATTACKS: &[(&str, &[&str])] = &[
    (
        "<script>fetch('//t.example')</script>",
        &["<script", "fetch"],
    ),
    ("<SCRIPT SRC=//t.example/x.js></SCRIPT>", &["t.example"]),
    ("<scr<script>ipt>alert(1)</script>", &["<script"]),
    ("<img src=x onerror=alert(1)>", &["onerror", "alert"]),
    ("<img src=x OnError=\"alert(1)\">", &["onerror"]),
    ("<img src=\"https://t.example/p.gif\">", &["t.example"]),
    ("<img src=//t.example/p.gif>", &["t.example"]),
    ("<img src=\"  //t.example/p.gif\">", &["t.example"]),
    ("<img src=\"&#x2F;&#x2F;t.example/p.gif\">", &["t.example"]),
    ("<img src=\"\\\\t.example\\p.gif\">", &["t.example"]),
    (
        "<img srcset=\"a.png 1x, https://t.example/b.png 2x\">",
        &["t.example"],
    ),
    ("<img srcset=\"https://t.example/b.png\">", &["t.example"]),
    ("<img srcset=\"a.png (,//t.example/x 1x)\">", &["t.example"]),
    (
        "<picture><source srcset=//t.example/s.webp><img src=a.png></picture>",
        &["t.example"],
    ),
    (
        "<a href=\"javascript:alert(1)\">x</a>",
        &["javascript", "alert"],
    ),
    (
        "<a href=\"jav&#x09;ascript:alert(1)\">x</a>",
        &["ascript:", "alert"],
    ),
    (
        "<a href=\"jav&#97;script&colon;alert(1)\">x</a>",
        &["script:", "alert"],
    ),
    (
        "<a href=\"https://t.example/\" ping=\"https://t.example/ping\">x</a>",
        &["ping", "https://t.example"],
    ),
    ("<a href=\"//t.example\">x</a>", &["href=\"//t.example"]),
    (
        "<base href=\"https://t.example/\">",
        &["t.example", "<base"],
    ),
    (
        "<meta http-equiv=\"refresh\" content=\"0;url=https://t.example/\">",
        &["t.example", "refresh"],
    ),
    (
        "<meta http-equiv=set-cookie content=\"a=b\">",
        &["set-cookie"],
    ),
    ("<meta name=referrer content=unsafe-url>", &["unsafe-url"]),
    (
        "<link rel=stylesheet href=https://t.example/s.css>",
        &["t.example"],
    ),
    ("<link rel=prefetch href=x.html>", &["prefetch"]),
    ("<link rel=dns-prefetch href=//t.example>", &["t.example"]),
    (
        "<link rel=preconnect href=https://t.example>",
        &["t.example"],
    ),
    ("<link rel=\"stylesheet preload\" href=a.css>", &["preload"]),
    ("<link rel=import href=x.html>", &["import"]),
    (
        "<link rel=icon href=https://t.example/f.ico>",
        &["t.example"],
    ),
    (
        "<form action=https://t.example/collect><input name=q></form>",
        &["t.example"],
    ),
    (
        "<form><button formaction=//t.example>go</button></form>",
        &["t.example"],
    ),
    (
        "<iframe src=https://t.example></iframe>",
        &["t.example", "<iframe"],
    ),
    (
        "<iframe srcdoc=\"<script>alert(1)</script>\"></iframe>",
        &["srcdoc", "alert"],
    ),
    (
        "<object data=https://t.example/x.swf></object>",
        &["t.example"],
    ),
    ("<embed src=https://t.example/x.swf>", &["t.example"]),
    (
        "<svg><image href=https://t.example/i.png /></svg>",
        &["t.example"],
    ),
    (
        "<svg><a xlink:href=javascript:alert(1)><text>x</text></a></svg>",
        &["javascript"],
    ),
    ("<svg onload=alert(1)>", &["onload"]),
    (
        "<math><mtext><style><img src=//t.example></style></mtext></math>",
        &["t.example"],
    ),
    (
        "<video poster=https://t.example/p.jpg src=v.webm></video>",
        &["t.example"],
    ),
    (
        "<audio src=https://t.example/a.ogg></audio>",
        &["t.example"],
    ),
    (
        "<video><track src=https://t.example/t.vtt></video>",
        &["t.example"],
    ),
    ("<body background=https://t.example/bg.png>", &["t.example"]),
    ("<table background=//t.example/bg.png>", &["t.example"]),
    (
        "<input type=image src=https://t.example/b.png>",
        &["t.example"],
    ),
    (
        "<div style=\"background:url(https://t.example/a)\">x</div>",
        &["t.example"],
    ),
    (
        "<div style=\"background:url(&quot;https://t.example/a&quot;)\">x</div>",
        &["t.example"],
    ),
    (
        "<style>@import url(https://t.example/s.css);</style>",
        &["t.example"],
    ),
    (
        "<style>p{background:url(//t.example/x)}</style>",
        &["t.example"],
    ),
    (
        "<style>p{content:'</style><img src=//t.example>'}</style>",
        &["t.example"],
    ),
    (
        "<noscript><p title=\"</noscript><img src=//t.example>\"></noscript>",
        &["t.example"],
    ),
    ("<xmp><img src=//t.example></xmp>", &["t.example"]),
    ("<noembed><img src=//t.example></noembed>", &["t.example"]),
    ("<template><img src=//t.example></template>", &["t.example"]),
    ("<!--<img src=//t.example>-->", &["t.example"]),
    (
        "<!--[if IE]><img src=//t.example><![endif]-->",
        &["t.example"],
    ),
    (
        "<html manifest=https://t.example/m.appcache>",
        &["t.example"],
    ),
    (
        "<img src=a.png lowsrc=https://t.example/l.gif dynsrc=//t.example/d>",
        &["t.example"],
    ),
    (
        "<blockquote cite=https://t.example/q>x</blockquote>",
        &["t.example"],
    ),
    (
        "<img src=a.png usemap=https://t.example/#m>",
        &["t.example"],
    ),
    (
        "<a href=x.html target=_blank rel=opener>x</a><portal src=https://t.example>",
        &["t.example"],
    ),
    (
        "<custom-el onclick=alert(1) src=//t.example>hi</custom-el>",
        &["onclick", "t.example"],
    ),
    (
        "<img src=\"data:text/html;base64,PHNjcmlwdD4=\">",
        &["data:text"],
    ),
    (
        "<a href=\"data:text/html,<script>alert(1)</script>\">x</a>",
        &["data:", "alert"],
    ),
    (
        "<img src=\"data:image/svg+xml,<svg onload=alert(1)>\">",
        &["svg"],
    ),
    (
        "<p style=\"-moz-binding:url(//t.example/x.xml#x)\">x</p>",
        &["t.example"],
    ),
];

fn filtered(html: &str) -> String {
    String::from_utf8(filter_html(html.as_bytes()).unwrap()).unwrap()
}

#[test]
fn every_known_attack_is_neutralised() {
    for (attack, forbidden) in ATTACKS {
        let out = filtered(attack).to_ascii_lowercase();
        for word in *forbidden {
            assert!(
                !out.contains(&word.to_ascii_lowercase()),
                "{attack:?} kept {word:?}: {out:?}"
            );
        }
    }
}

#[test]
fn outside_links_lead_to_the_leaving_page_and_keys_to_the_gateway() {
    let out = filtered("<a href=\"https://elsewhere.example/page?a=1&amp;b=2\">away</a>");
    assert!(
        out.contains(
            "href=\"/_/leave?url=https%3A%2F%2Felsewhere%2Eexample%2Fpage%3Fa%3D1%26b%3D2\""
        ),
        "{out}"
    );
    let out = filtered("<a href=\"CHK@abc,def,AAE/other.html\">k</a>");
    assert!(
        out.contains("href=\"/CHK@abc,def,AAE/other.html\""),
        "{out}"
    );
    let out = filtered("<a href=\"http://127.0.0.1:8888/CHK@abc,def,AAE/\">k</a>");
    assert!(out.contains("href=\"/CHK@abc,def,AAE/\""), "{out}");
}

#[test]
fn a_plain_site_keeps_its_text_images_styles_and_links() {
    let page = "<!doctype html><html><head><meta charset=\"utf-8\"><title>T</title>\
        <link rel=\"stylesheet\" href=\"css/style.css\"><style>h1 { color: red }</style></head>\
        <body><h1 id=\"top\" class=\"big\">Hello</h1><p style=\"margin: 0\">text &amp; more</p>\
        <img src=\"img/a.png\" srcset=\"img/a.png 1x, img/a@2x.png 2x\" alt=\"a\">\
        <a href=\"docs/index.html#x\">docs</a><a href=\"../up/\">up</a></body></html>";
    let out = filtered(page);
    for kept in [
        "<meta charset=\"utf-8\">",
        "<title>T</title>",
        "<link rel=\"stylesheet\" href=\"css/style.css\">",
        "h1 { color: red }",
        "<h1 id=\"top\" class=\"big\">Hello</h1>",
        "text &amp; more",
        "src=\"img/a.png\"",
        "srcset=\"img/a.png 1x, img/a@2x.png 2x\"",
        "href=\"docs/index.html#x\"",
        "href=\"../up/\"",
        "style=\"margin: 0\"",
    ] {
        assert!(out.contains(kept), "lost {kept:?}: {out}");
    }
}

#[test]
fn decoded_attribute_values_are_written_back_so_the_browser_reads_the_same() {
    // `&amp;` in a kept URL stays an escaped ampersand, not a new reference.
    let out = filtered("<a href=\"a.html?x=1&amp;lt=2\">x</a>");
    assert!(out.contains("href=\"a.html?x=1&amp;lt=2\""), "{out}");
}

#[test]
fn ambiguous_markup_is_refused_not_guessed() {
    let err = filter_html(b"<select><xmp><script>alert(1)</script></select>").unwrap_err();
    assert!(matches!(err, FilterError::Html(_)), "{err}");
}

#[test]
fn utf16_and_oversized_input_are_refused() {
    assert_eq!(filter_html(b"\xFF\xFE<\0p\0>\0"), Err(FilterError::Utf16));
    assert_eq!(filter_css(b"\xFE\xFF\0p"), Err(FilterError::Utf16));
    let big = vec![b'a'; MAX_FILTERED_CSS as usize + 1];
    assert!(matches!(
        filter_css(&big),
        Err(FilterError::TooLarge { .. })
    ));
}

#[test]
fn types_are_filtered_passed_or_offered() {
    assert_eq!(treatment("text/html; charset=utf-8"), Treatment::Html);
    assert_eq!(treatment("TEXT/CSS"), Treatment::Css);
    assert_eq!(treatment("image/png"), Treatment::Inert);
    assert_eq!(treatment("video/webm"), Treatment::Inert);
    assert_eq!(treatment("image/svg+xml"), Treatment::Unfiltered);
    assert_eq!(treatment("application/pdf"), Treatment::Unfiltered);
    assert_eq!(treatment("text/javascript"), Treatment::Unfiltered);
    assert_eq!(treatment("application/octet-stream"), Treatment::Unfiltered);
}

proptest! {
    #[test]
    fn any_markup_is_filtered_without_panic_or_unbounded_growth(
        html in "(<[a-z]{1,8}( [a-z:-]{1,8}(=(\"[^\"]{0,20}\"|[^ >]{0,12}))?){0,3}>|</[a-z]{1,8}>|[^<]{0,20}|<!--|-->|<style>|url\\(//t.example\\)){0,40}"
    ) {
        if let Ok(out) = filter_html(html.as_bytes()) {
            prop_assert!(out.len() <= MAX_GROWTH_FACTOR * html.len() + MAX_GROWTH_SLACK);
            let text = String::from_utf8_lossy(&out).to_ascii_lowercase();
            prop_assert!(!text.contains("<script"), "{}", text);
        }
    }

    #[test]
    fn any_stylesheet_is_filtered_without_panic_or_unbounded_growth(css in any::<Vec<u8>>()) {
        match filter_css(&css) {
            Ok(out) => prop_assert!(out.len() <= MAX_GROWTH_FACTOR * css.len() + MAX_GROWTH_SLACK),
            // Random bytes can start with a UTF-16 byte-order mark, which is
            // refused, never read; nothing else may fail.
            Err(err) => prop_assert!(
                err == FilterError::Utf16 && (css.starts_with(b"\xFF\xFE") || css.starts_with(b"\xFE\xFF")),
                "{err} for {css:?}"
            ),
        }
    }

    #[test]
    fn the_fuzz_body_holds_for_any_bytes(bytes in any::<Vec<u8>>()) {
        fuzz_filter(&bytes);
    }

    #[test]
    fn no_outside_url_survives_in_css(
        prefix in "[a-z{}:; ]{0,10}",
        quote in prop::sample::select(vec!["", "'", "\""]),
        scheme in prop::sample::select(vec!["https://", "//", "HTTP://", "\\2f\\2f"]),
    ) {
        let css = format!("{prefix} p {{ background: url({quote}{scheme}t.example/x{quote}) }}");
        let out = css::sanitize(&css);
        prop_assert!(!out.contains("t.example"), "{} -> {}", css, out);
    }
}
