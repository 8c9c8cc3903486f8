//! Markdown to HTML that is safe to put in a page, whoever wrote the Markdown.
//!
//! CommonMark (with tables, strikethrough, task lists and footnotes) rendered by pulldown-cmark,
//! which escapes all text and attribute values. Two things it passes through are closed here,
//! so no sanitizer is needed after it:
//! * raw HTML (blocks and inline) becomes text: `<script>` shows as `&lt;script&gt;`;
//! * link and image destinations with a scheme other than http, https or mailto become `#`
//!   (`javascript:`, `data:`, `vbscript:`…, also when spelled with entities, mixed case, or
//!   tabs and newlines that browsers drop from URLs).

use pulldown_cmark::{html, CowStr, Event, Options, Parser, Tag};

/// Safe HTML of `markdown`.
pub fn to_html(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES;
    let events = Parser::new_ext(markdown, options).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Image {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        other => other,
    });
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut out, events);
    out
}

/// `url` if it is relative or http(s)/mailto; otherwise `#`. The scheme is read as a browser
/// would: ignoring ASCII whitespace and control characters, case-insensitively.
fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    let seen: String = url
        .chars()
        .filter(|c| !c.is_ascii_whitespace() && !c.is_control())
        .collect();
    let scheme_end = seen.find(':');
    let path_start = seen.find(['/', '?', '#']);
    let scheme = match (scheme_end, path_start) {
        (Some(colon), Some(path)) if path < colon => None,
        (Some(colon), _) => Some(seen[..colon].to_ascii_lowercase()),
        (None, _) => None,
    };
    match scheme.as_deref() {
        None | Some("http" | "https" | "mailto") => url,
        Some(_) => CowStr::Borrowed("#"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_renders() {
        let html = to_html("# Hello\n\nSome *text* and [a link](https://example.com \"t\").\n\n| a | b |\n|---|---|\n| 1 | 2 |\n");
        assert!(html.contains("<h1>Hello</h1>"), "{html}");
        assert!(html.contains("<em>text</em>"));
        assert!(html.contains("<a href=\"https://example.com\" title=\"t\">a link</a>"));
        assert!(html.contains("<table>"));
        assert!(
            to_html("[rel](/about) [frag](#top) [mail](mailto:a@example.com)")
                .contains("href=\"/about\"")
        );
    }

    /// What pulldown-cmark writes, and nothing else may appear.
    const TAGS: &[&str] = &[
        "p",
        "a",
        "em",
        "strong",
        "del",
        "code",
        "pre",
        "blockquote",
        "ul",
        "ol",
        "li",
        "hr",
        "br",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "img",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "input",
        "sup",
        "div",
    ];
    const ATTRIBUTES: &[&str] = &[
        "href", "src", "alt", "title", "class", "id", "type", "checked", "disabled", "start",
        "style",
    ];

    /// The opening tags of `html`: names and attributes (values unquoted).
    fn tags(html: &str) -> Vec<(String, Vec<(String, String)>)> {
        let mut found = Vec::new();
        for piece in html.split('<').skip(1) {
            let inside = piece.split('>').next().unwrap_or_default();
            if inside.starts_with('/') {
                continue;
            }
            let mut rest = inside.trim_end_matches('/').trim();
            let name_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let name = rest[..name_end].to_ascii_lowercase();
            rest = rest[name_end..].trim_start();
            let mut attributes = Vec::new();
            while !rest.is_empty() {
                let key_end = rest.find(['=', ' ']).unwrap_or(rest.len());
                let key = rest[..key_end].to_ascii_lowercase();
                rest = &rest[key_end..];
                let mut value = String::new();
                if let Some(after) = rest.strip_prefix("=\"") {
                    let close = after.find('"').unwrap_or(after.len());
                    value = after[..close].to_string();
                    rest = after.get(close + 1..).unwrap_or_default();
                }
                attributes.push((key, value));
                rest = rest.trim_start();
            }
            found.push((name, attributes));
        }
        found
    }

    #[test]
    fn nothing_stored_can_run_script() {
        let attacks = [
            "<script>alert(1)</script>",
            "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
            "text <img src=x onerror=alert(1)> more",
            "<div onmouseover=\"alert(1)\">hover</div>",
            "<iframe src=\"javascript:alert(1)\"></iframe>",
            "[x](javascript:alert(1))",
            "[x](JavaScript:alert(1))",
            "[x](java\tscript:alert(1))",
            "[x](&#106;avascript:alert(1))",
            "[x](&#x6A;avascript&colon;alert(1))",
            "[x]( javascript:alert(1) )",
            "<javascript:alert(1)>",
            "![x](javascript:alert(1))",
            "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
            "[x](vbscript:msgbox(1))",
            "[x]: javascript:alert(1)\n\n[x]",
            "[x](\"onmouseover=alert(1))",
            "[x](https://example.com\"onmouseover=\"alert(1))",
            "`<script>` and\n\n    <script>alert(1)</script>\n",
            "<style>body{display:none}</style>",
            "<a href=\"javascript:alert(1)\">x</a>",
        ];
        for attack in attacks {
            let html = to_html(attack);
            for (name, attributes) in tags(&html) {
                assert!(
                    TAGS.contains(&name.as_str()),
                    "{attack:?} gave <{name}>: {html}"
                );
                for (attribute, value) in attributes {
                    assert!(
                        ATTRIBUTES.contains(&attribute.as_str()),
                        "{attack:?} gave {attribute}: {html}"
                    );
                    if attribute == "href" || attribute == "src" {
                        let v = value.to_ascii_lowercase();
                        assert!(
                            v == "#"
                                || v.starts_with("http")
                                || v.starts_with('/')
                                || v.starts_with("mailto:")
                                || !v.contains(':'),
                            "{attack:?} gave {attribute}={value}: {html}"
                        );
                    }
                }
            }
        }
        assert_eq!(
            to_html("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
    }
}
