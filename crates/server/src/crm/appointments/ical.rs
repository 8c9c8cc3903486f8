//! iCalendar (RFC 5545) text of a member's appointments, for calendar subscriptions.
//!
//! Times are written in UTC (`…Z`), so no `VTIMEZONE` is needed; text values are escaped
//! (§3.3.11) and every content line is folded at 75 octets without splitting a character
//! (§3.1); lines end in CRLF.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::AppointmentStatus;

/// What a calendar shows of one appointment.
#[derive(Debug, sqlx::FromRow)]
pub struct Event {
    pub id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub location: Option<String>,
    pub meeting_url: Option<String>,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    #[sqlx(try_from = "String")]
    pub status: AppointmentStatus,
    /// Bumped by the database with every change a calendar shows (its `SEQUENCE`).
    pub revision: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The `VCALENDAR` of `events`. Without `METHOD`, an event's `DTSTAMP` is when it was last
/// revised (§3.8.7.2), so the same events always give the same text (and ETag).
pub fn calendar(name: &str, events: &[Event]) -> String {
    let mut out = String::new();
    line(&mut out, "BEGIN:VCALENDAR");
    line(&mut out, "VERSION:2.0");
    line(&mut out, "PRODID:-//Tenantry//Appointments//EN");
    line(&mut out, "CALSCALE:GREGORIAN");
    line(&mut out, &format!("X-WR-CALNAME:{}", text(name)));
    for event in events {
        line(&mut out, "BEGIN:VEVENT");
        line(&mut out, &format!("UID:{}@tenantry", event.id));
        line(&mut out, &format!("DTSTAMP:{}", instant(event.updated_at)));
        line(&mut out, &format!("DTSTART:{}", instant(event.start_time)));
        line(&mut out, &format!("DTEND:{}", instant(event.end_time)));
        line(&mut out, &format!("SEQUENCE:{}", event.revision));
        line(&mut out, &format!("CREATED:{}", instant(event.created_at)));
        line(
            &mut out,
            &format!("LAST-MODIFIED:{}", instant(event.updated_at)),
        );
        line(&mut out, &format!("SUMMARY:{}", text(&event.title)));
        if let Some(description) = &event.description {
            line(&mut out, &format!("DESCRIPTION:{}", text(description)));
        }
        if let Some(location) = &event.location {
            line(&mut out, &format!("LOCATION:{}", text(location)));
        }
        if let Some(url) = &event.meeting_url {
            // A URI value, not TEXT: written as is (the database allows no whitespace in it).
            line(&mut out, &format!("URL:{url}"));
        }
        line(&mut out, &format!("STATUS:{}", status(event.status)));
        line(&mut out, "END:VEVENT");
    }
    line(&mut out, "END:VCALENDAR");
    out
}

fn status(status: AppointmentStatus) -> &'static str {
    match status {
        AppointmentStatus::Scheduled => "TENTATIVE",
        AppointmentStatus::Cancelled => "CANCELLED",
        AppointmentStatus::Confirmed | AppointmentStatus::Completed | AppointmentStatus::NoShow => {
            "CONFIRMED"
        }
    }
}

/// A UTC DATE-TIME (§3.3.5, form #2).
fn instant(at: DateTime<Utc>) -> String {
    at.format("%Y%m%dT%H%M%SZ").to_string()
}

/// A TEXT value: backslash, semicolon and comma escaped, line breaks as `\n` (§3.3.11).
fn text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\r' | '\n' => out.push_str("\\n"),
            // Other control characters are not allowed in TEXT.
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Appends a content line, folded so no line exceeds 75 octets (a fold is CRLF and a space,
/// never inside a UTF-8 sequence).
fn line(out: &mut String, content: &str) {
    let mut width = 0;
    for c in content.chars() {
        let len = c.len_utf8();
        if width + len > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += len;
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            text("a;b,c\\d\r\ne\nf\u{7}"),
            "a\\;b\\,c\\\\d\\ne\\nf".to_string()
        );
    }

    #[test]
    fn long_lines_fold_at_75_octets_between_characters() {
        let mut out = String::new();
        let content = format!("SUMMARY:{}", "é".repeat(60));
        line(&mut out, &content);
        let lines: Vec<&str> = out.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert!(lines.len() > 1);
        for (i, l) in lines.iter().enumerate() {
            assert!(l.len() <= 75, "line {i} has {} octets", l.len());
            assert_eq!(i > 0, l.starts_with(' '));
        }
        // Unfolding gives the content back.
        assert_eq!(out.replace("\r\n ", "").trim_end_matches("\r\n"), content);
    }
}
