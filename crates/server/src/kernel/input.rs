//! Parsing input, one way for every slice: a request type says what it must satisfy
//! (`Validate`), and only a value that passed gets the type stores take (`Valid<T>`), so no store
//! can be handed input nobody checked. Every failed rule of one input is reported in one 422 (a
//! form shows them all at once), unlike zero-to-production's fail-fast per-field types; the rules
//! below are its domain types' checks, each with its unit tests beside it.

use std::ops::Deref;

use super::error::{Error, FieldError, Result};

/// What an input must satisfy, said once beside its type.
pub trait Validate {
    /// Whether the input is a list (a JSON array body); otherwise it is an object.
    const LIST: bool = false;

    /// Adds a field error to `checks` for every rule the value breaks.
    fn check(&self, checks: &mut Checks);
}

/// An input that passed its checks. Stores take this; only `Valid::new` makes one.
#[derive(Debug, Clone)]
pub struct Valid<T>(T);

impl<T: Validate> Valid<T> {
    /// Checks `input`: every broken rule is named in one `Error::Validation`.
    pub fn new(input: T) -> Result<Self> {
        let mut checks = Checks::default();
        input.check(&mut checks);
        if checks.0.is_empty() {
            Ok(Valid(input))
        } else {
            Err(Error::Validation(checks.0))
        }
    }
}

impl<T> Valid<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Valid<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// The field errors of one input.
#[derive(Default)]
pub struct Checks(Vec<FieldError>);

impl Checks {
    /// Applies `rule` to `value` when it is present, naming `field` if it fails.
    pub fn field<V>(&mut self, field: &str, value: Option<V>, rule: impl FnOnce(V) -> Rule) {
        if let Some(Err(message)) = value.map(rule) {
            self.0.push(FieldError::new(field, message));
        }
    }
}

/// The outcome of one rule: the message says what the value must be.
pub type Rule = std::result::Result<(), String>;

/// The value of a PATCH field that is set to something (not absent, not `null`).
pub fn set<T: Deref>(value: &Option<Option<T>>) -> Option<&T::Target> {
    value.as_ref().and_then(|v| v.as_deref())
}

/// Text of `min` to `max` characters; for `min > 0`, blanks do not count towards `min`.
pub fn text(min: usize, max: usize) -> impl Fn(&str) -> Rule {
    move |value| {
        let ok = value.trim().chars().count() >= min && value.chars().count() <= max;
        match (ok, min) {
            (true, _) => Ok(()),
            (false, 0) => Err(format!("must be at most {max} characters")),
            (false, _) => Err(format!("must be {min} to {max} characters")),
        }
    }
}

/// An email address as people type them: one `@` with something on both sides, no blanks,
/// at most 254 characters (RFC 5321), blanks around it ignored. Whether it receives mail only
/// sending can tell. Blanks are Unicode's white space and U+FEFF: the document's pattern says
/// the same in ECMAScript's `\s` and U+0085.
pub fn email(value: &str) -> Rule {
    // The document's maxLength is of the value as sent, blanks around it included.
    let sent = value.chars().count();
    let value = value.trim_matches(is_blank);
    let ok = sent <= 254
        && !value.chars().any(is_blank)
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        });
    ok.then_some(())
        .ok_or_else(|| "must be an email address".into())
}

/// The address [`email`] accepted, as it is stored (without the blanks around it).
pub fn email_as_stored(value: &str) -> &str {
    value.trim_matches(is_blank)
}

fn is_blank(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}'
}

/// A URL-safe name: 1 to 63 lowercase letters, digits or dashes, no dash at either end.
pub fn slug(value: &str) -> Rule {
    let bytes = value.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-';
    ok.then_some(()).ok_or_else(|| {
        "must be 1 to 63 lowercase letters, digits or dashes, not starting or ending with a dash"
            .into()
    })
}

/// A key as code names things: 1 to `max` lowercase letters, digits or underscores, starting
/// with a letter (custom field keys).
pub fn slug_key(max: usize) -> impl Fn(&str) -> Rule {
    move |value| {
        let bytes = value.as_bytes();
        let ok = bytes.first().is_some_and(u8::is_ascii_lowercase)
            && bytes.len() <= max
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_');
        ok.then_some(()).ok_or_else(|| {
            format!("must be 1 to {max} lowercase letters, digits or underscores, starting with a letter")
        })
    }
}

/// An exact, non-negative decimal written as a string (`"1234.50"`): at most `digits` digits
/// before the point and `scale` after it. Money and hours travel as strings so that no float
/// ever rounds them.
pub fn decimal(digits: usize, scale: usize) -> impl Fn(&str) -> Rule {
    move |value| {
        let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
        let ok = (1..=digits).contains(&whole.len())
            && whole.bytes().all(|b| b.is_ascii_digit())
            && fraction.len() <= scale
            && fraction.bytes().all(|b| b.is_ascii_digit())
            && !(value.contains('.') && fraction.is_empty());
        ok.then_some(()).ok_or_else(|| {
            format!("must be a decimal string with at most {digits} digits before the point and {scale} after it")
        })
    }
}

/// A number JSON can carry back (no infinity or NaN).
pub fn finite(value: f64) -> Rule {
    value
        .is_finite()
        .then_some(())
        .ok_or_else(|| "must be a finite number".into())
}

/// A finite number above zero.
pub fn positive(value: f64) -> Rule {
    (value.is_finite() && value > 0.0)
        .then_some(())
        .ok_or_else(|| "must be a positive number".into())
}

/// A JSON object (not an array, string, number or null).
pub fn json_object(value: &serde_json::Value) -> Rule {
    value
        .is_object()
        .then_some(())
        .ok_or_else(|| "must be a JSON object".into())
}

/// An `http` or `https` URL of at most 2048 bytes.
pub fn http_url(value: &str) -> Rule {
    let ok = value.len() <= 2048 && (value.starts_with("https://") || value.starts_with("http://"));
    ok.then_some(())
        .ok_or_else(|| "must be an http(s) URL of at most 2048 characters".into())
}

/// An http(s) URL with something after the scheme and no blanks (a link a page or an email
/// can carry: never `javascript:`).
pub fn web_link(value: &str) -> Rule {
    http_url(value)?;
    let rest = value.split_once("://").map_or("", |(_, rest)| rest);
    (!rest.is_empty() && !value.chars().any(char::is_whitespace))
        .then_some(())
        .ok_or_else(|| "must be an http(s) URL without blanks".into())
}

/// Tells a field given as `null` (`Some(None)`) from an absent one (`None`) in PATCH bodies.
pub fn present<'de, D, T>(d: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_counts_characters_and_ignores_blanks_for_the_minimum() {
        let name = text(1, 3);
        assert!(name("abc").is_ok());
        assert!(name("äöü").is_ok(), "characters, not bytes");
        assert!(name("").is_err());
        assert!(name("   ").is_err(), "blank is empty");
        assert!(name("abcd").is_err());
        assert_eq!(name("").unwrap_err(), "must be 1 to 3 characters");
        let description = text(0, 2);
        assert!(description("").is_ok());
        assert_eq!(
            description("abc").unwrap_err(),
            "must be at most 2 characters"
        );
    }

    #[test]
    fn decimals_are_plain_digits_with_a_bounded_scale() {
        let money = decimal(12, 2);
        for good in ["0", "1234.5", "1234.50", "999999999999.99"] {
            assert!(money(good).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            ".5",
            "1.",
            "1.234",
            "-1",
            "1e3",
            "1,5",
            " 1",
            "1234567890123",
            "NaN",
        ] {
            assert!(money(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keys_start_with_a_letter_and_use_no_capitals() {
        let key = slug_key(5);
        for good in ["a", "ab_1", "tier5"] {
            assert!(key(good).is_ok(), "{good:?}");
        }
        for bad in ["", "1a", "_a", "Ab", "a-b", "abcdef", "ä"] {
            assert!(key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails() {
        for good in [
            "a@b",
            "first.last+tag@example.co.uk",
            " padded@example.com ",
        ] {
            assert!(email(good).is_ok(), "{good:?}");
        }
        let long = format!("{}@example.com", "x".repeat(250));
        for bad in [
            "",
            "a",
            "@b",
            "a@",
            "a@b@c",
            "a b@c",
            "a@b\tc",
            long.as_str(),
        ] {
            assert!(email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn slugs() {
        assert!(slug("a-b-1").is_ok());
        assert!(slug(&"a".repeat(63)).is_ok());
        for bad in ["", "-a", "a-", "A", "a b", "a_b", "ä", &"a".repeat(64)] {
            assert!(slug(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn numbers() {
        assert!(finite(-1.5).is_ok());
        assert!(finite(f64::NAN).is_err());
        assert!(finite(f64::INFINITY).is_err());
        assert!(positive(0.001).is_ok());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(positive(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn objects_and_urls() {
        assert!(json_object(&serde_json::json!({})).is_ok());
        assert!(json_object(&serde_json::json!([])).is_err());
        assert!(json_object(&serde_json::Value::Null).is_err());
        assert!(http_url("https://example.com/a.png").is_ok());
        assert!(http_url("javascript:alert(1)").is_err());
        assert!(http_url(&format!("https://{}", "x".repeat(2048))).is_err());
        assert!(web_link("https://meet.example.com/abc").is_ok());
        assert!(web_link("http://10.0.0.1:8080/room").is_ok());
        assert!(web_link("javascript:alert(1)").is_err());
        assert!(web_link("https://").is_err());
        assert!(web_link("https://meet.example.com/a b").is_err());
    }

    struct Pair {
        name: String,
        weight: Option<f64>,
        note: Option<Option<String>>,
    }

    impl Validate for Pair {
        fn check(&self, c: &mut Checks) {
            c.field("name", Some(self.name.as_str()), text(1, 10));
            c.field("weight", self.weight, positive);
            c.field("note", set(&self.note), text(0, 3));
        }
    }

    #[test]
    fn every_broken_rule_is_named_once() {
        let Err(Error::Validation(errors)) = Valid::new(Pair {
            name: " ".into(),
            weight: Some(-1.0),
            note: Some(Some("long".into())),
        }) else {
            panic!("accepted")
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "weight", "note"]);
        let valid = Valid::new(Pair {
            name: "ok".into(),
            weight: None,
            note: Some(None),
        })
        .expect("valid");
        assert_eq!(valid.name, "ok");
    }
}
