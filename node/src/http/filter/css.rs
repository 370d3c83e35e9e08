//! The CSS filter: the stylesheet is tokenized by `cssparser` (the CSS
//! Syntax tokenizer Servo and Firefox use) and written out again token by
//! token, so what the browser parses is exactly what was checked. Every URL
//! (`url(…)`, `src(…)`, strings in `image-set(…)`) that does not stay on the
//! node becomes `none`; `@import` rules are dropped whole (an imported sheet
//! would be fetched and applied without passing through here); comments go.

use std::fmt::Write as _;

use cssparser::{Parser, ParserInput, ToCss as _, Token, TokenSerializationType};

use super::url::{self, Use};

/// Deepest nesting of blocks and functions kept; deeper content is dropped
/// (the tokenizer recurses per level).
pub const MAX_CSS_NESTING: usize = 64;
/// At-rules dropped with their prelude and block.
const DROPPED_AT_RULES: [&str; 3] = ["import", "document", "-moz-document"];
/// Functions whose quoted-string arguments are URLs.
const URL_STRING_FUNCTIONS: [&str; 5] = [
    "image-set",
    "-webkit-image-set",
    "cross-fade",
    "-webkit-cross-fade",
    "image",
];
/// Functions that take one URL (a quoted string or bare).
const URL_FUNCTIONS: [&str; 2] = ["url", "src"];
/// Functions that were code in old browsers; dropped whole.
const DROPPED_FUNCTIONS: [&str; 2] = ["expression", "-moz-binding"];

/// Filters a stylesheet (or the declarations of a `style` attribute: the
/// same tokens, so the same walk).
pub fn sanitize(css: &str) -> String {
    let mut input = ParserInput::new(css);
    let mut parser = Parser::new(&mut input);
    let mut out = Writer::default();
    walk(&mut parser, &mut out, 0, false);
    // `</style>` inside a string would end the HTML element it is in: no
    // `<` survives (`\3c ` is the same character to CSS).
    out.text.replace('<', "\\3c ")
}

/// Output with the separator rule cssparser documents: two tokens that would
/// run together when written side by side get an empty comment between them.
#[derive(Default)]
struct Writer {
    text: String,
    last: Option<TokenSerializationType>,
}

impl Writer {
    fn token(&mut self, token: &Token<'_>) {
        self.separate(token.serialization_type());
        let _ = token.to_css(&mut self.text);
    }

    fn raw(&mut self, text: &str, kind: TokenSerializationType) {
        self.separate(kind);
        self.text.push_str(text);
    }

    fn separate(&mut self, next: TokenSerializationType) {
        if self
            .last
            .is_some_and(|last| last.needs_separator_when_before(next))
        {
            self.text.push_str("/**/");
        }
        self.last = Some(next);
    }

    fn none(&mut self) {
        self.raw("none", Token::Ident("none".into()).serialization_type());
    }

    /// A closing bracket: nothing needs separating from it.
    fn close(&mut self, closer: &str) {
        self.text.push_str(closer);
        self.last = Some(TokenSerializationType::default());
    }
}

fn is_one_of(name: &str, list: &[&str]) -> bool {
    list.iter().any(|n| name.eq_ignore_ascii_case(n))
}

fn closer(token: &Token<'_>) -> Option<&'static str> {
    match token {
        Token::Function(_) | Token::ParenthesisBlock => Some(")"),
        Token::SquareBracketBlock => Some("]"),
        Token::CurlyBracketBlock => Some("}"),
        _ => None,
    }
}

/// Writes the tokens of `parser` (one nesting level) to `out`, filtered.
fn walk(parser: &mut Parser<'_, '_>, out: &mut Writer, depth: usize, strings_are_urls: bool) {
    let mut dropping_rule = false;
    loop {
        let token = match parser.next_including_whitespace_and_comments() {
            Ok(token) => token.clone(),
            Err(_) => return,
        };
        if dropping_rule {
            // Until the rule's `;` or its block (skipped unentered).
            dropping_rule = !matches!(token, Token::Semicolon | Token::CurlyBracketBlock);
            continue;
        }
        match &token {
            Token::Comment(_) => {}
            Token::AtKeyword(name) if is_one_of(name, &DROPPED_AT_RULES) => dropping_rule = true,
            Token::UnquotedUrl(value) => match url::rewrite(value, Use::Load, true) {
                Some(kept) => out.token(&Token::UnquotedUrl(kept.as_str().into())),
                None => out.none(),
            },
            Token::BadUrl(_) | Token::BadString(_) => out.none(),
            Token::QuotedString(value) if strings_are_urls => {
                match url::rewrite(value, Use::Load, true) {
                    Some(kept) => out.token(&Token::QuotedString(kept.as_str().into())),
                    None => out.none(),
                }
            }
            Token::Function(name) if is_one_of(name, &URL_FUNCTIONS) => {
                url_function(parser, out);
            }
            Token::Function(name) if is_one_of(name, &DROPPED_FUNCTIONS) => out.none(),
            Token::Function(_)
            | Token::ParenthesisBlock
            | Token::SquareBracketBlock
            | Token::CurlyBracketBlock => {
                let urls_inside = matches!(&token, Token::Function(name)
                    if is_one_of(name, &URL_STRING_FUNCTIONS));
                out.token(&token);
                if depth < MAX_CSS_NESTING {
                    let _ = parser.parse_nested_block(|inner| {
                        walk(inner, out, depth + 1, urls_inside || strings_are_urls);
                        Ok::<(), cssparser::ParseError<'_, ()>>(())
                    });
                }
                out.close(closer(&token).unwrap_or_default());
            }
            other => out.token(other),
        }
    }
}

/// `url("…")` or `src("…")`: one string argument, checked like a bare URL.
fn url_function(parser: &mut Parser<'_, '_>, out: &mut Writer) {
    let value: Option<String> = parser
        .parse_nested_block(|inner| {
            let mut found = None;
            while let Ok(token) = inner.next() {
                match token {
                    Token::QuotedString(value) if found.is_none() => {
                        found = Some(value.to_string());
                    }
                    // Modifiers after the string are not part of any URL we keep.
                    _ => found = Some(String::new()),
                }
            }
            Ok::<_, cssparser::ParseError<'_, ()>>(found)
        })
        .ok()
        .flatten()
        .filter(|v| !v.is_empty());
    match value.and_then(|v| url::rewrite(&v, Use::Load, true)) {
        Some(kept) => {
            let mut text = String::from("url(");
            let _ = cssparser::serialize_string(&kept, &mut text);
            let _ = write!(text, ")");
            out.raw(&text, Token::Ident("url".into()).serialization_type());
            out.last = Some(TokenSerializationType::default());
        }
        None => out.none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stylesheet tricks that would make the reader's browser call out, each
    /// with a piece of text that must not survive the filter.
    const ATTACKS: &[(&str, &str)] = &[
        ("body { background: url(https://t.example/a) }", "t.example"),
        (
            "body { background: url('https://t.example/a') }",
            "t.example",
        ),
        ("body { background: URL(\"//t.example/a\") }", "t.example"),
        ("body { background: u\\72 l(//t.example/a) }", "t.example"),
        ("body { background: \\75 rl(//t.example/a) }", "t.example"),
        ("@import url(//t.example/sheet.css);", "t.example"),
        ("@import 'https://t.example/sheet.css';", "t.example"),
        ("@IMPORT \"x.css\" screen; p{}", "x.css"),
        (
            "@font-face { src: url(https://t.example/f.woff) }",
            "t.example",
        ),
        (
            "p { background: image-set('https://t.example/a.png' 1x) }",
            "t.example",
        ),
        (
            "p { background: -webkit-image-set(\"//t.example/a\" 2x) }",
            "t.example",
        ),
        ("p { cursor: url(https://t.example/c), auto }", "t.example"),
        ("p { list-style: url(//t.example/dot) }", "t.example"),
        ("p { mask: url(https://t.example/m.svg#x) }", "t.example"),
        (
            "p { background: src(\"https://t.example/s\") }",
            "t.example",
        ),
        ("p { width: expression(alert(1)) }", "alert"),
        ("p { background: url(javascript:alert(1)) }", "javascript"),
        ("p { content: '</style><img src=//t.example>' }", "</style"),
        (
            "input[value^=a] { background: url(https://t.example/?a) }",
            "t.example",
        ),
        (
            "p { background: url(  https://t.example/a  ) }",
            "t.example",
        ),
        ("p{background:url(ht\\tps://t.example)}", "t.example"),
        (
            "@media all { @import url(//t.example); p { b: url(//t.example) } }",
            "t.example",
        ),
        (
            "@-moz-document url-prefix() { p { color: red } }",
            "document",
        ),
        (
            "/* c */ p { background: url( \t//t.example/y ) }",
            "t.example",
        ),
    ];

    #[test]
    fn every_known_stylesheet_trick_is_neutralised() {
        for (attack, forbidden) in ATTACKS {
            let out = sanitize(attack);
            assert!(
                !out.to_ascii_lowercase()
                    .contains(&forbidden.to_ascii_lowercase()),
                "{attack:?} became {out:?}"
            );
        }
    }

    #[test]
    fn local_styles_survive_unchanged_in_meaning() {
        let sheet = "#hello { color: rgb(0, 128, 0); background: url(img/bg.png) }\n\
                     @font-face { font-family: x; src: url(\"fonts/x.woff2\") format(\"woff2\") }\n\
                     a:hover > b::after { content: \"\\201C\" }";
        let out = sanitize(sheet);
        assert!(out.contains("#hello"), "{out}");
        assert!(out.contains("rgb(0, 128, 0)"), "{out}");
        assert!(out.contains("url(img/bg.png)"), "{out}");
        assert!(out.contains("url(\"fonts/x.woff2\")"), "{out}");
        assert!(out.contains("a:hover > b::after"), "{out}");
        assert!(sanitize("p { background: url(CHK@k,k,AAE/a.png) }").contains("/CHK@k,k,AAE/a.png"));
    }

    #[test]
    fn comments_between_tokens_keep_them_apart() {
        // Dropping the comment must not glue `a` and `b` into one identifier.
        let out = sanitize("p { x: a/**/b }");
        assert!(!out.contains("ab"), "{out}");
    }

    #[test]
    fn deep_nesting_is_cut_not_recursed() {
        let deep = "(".repeat(100_000);
        let out = sanitize(&deep);
        assert!(out.len() < 2 * MAX_CSS_NESTING + 16, "{}", out.len());
    }
}
