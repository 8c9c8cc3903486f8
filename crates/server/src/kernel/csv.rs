//! CSV as exports write it and imports read it: RFC 4180 quoting, one record per line, and text
//! that a spreadsheet would run as a formula neutralized (OWASP "CSV injection") in a way an
//! import undoes exactly.

/// Splits one CSV line into fields (RFC 4180 quoting; a field cannot span lines).
pub fn split_line(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => fields.push(std::mem::take(&mut field)),
            (_, c) => field.push(c),
        }
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    fields.push(field);
    Ok(fields)
}

/// Every record of a whole CSV document (RFC 4180: quoted fields may hold commas, quotes and line
/// breaks; lines end in LF or CRLF; blank lines are skipped), or the 1-based line where quoting
/// broke.
pub fn records(text: &str) -> std::result::Result<Vec<Vec<String>>, String> {
    let mut records = Vec::new();
    let (mut record, mut field) = (Vec::new(), String::new());
    let (mut quoted, mut was_quoted, mut line) = (false, false, 1usize);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => {
                line += usize::from(c == '\n');
                field.push(c);
            }
            (false, '"') if field.is_empty() && !was_quoted => (quoted, was_quoted) = (true, true),
            (false, '"') => return Err(format!("line {line}: a quote inside an unquoted field")),
            (false, ',') => {
                record.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                if !(record.len() == 1 && record[0].is_empty() && !was_quoted) {
                    records.push(std::mem::take(&mut record));
                }
                record.clear();
                was_quoted = false;
                line += 1;
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err(format!("line {line}: an unterminated quote"));
    }
    if !field.is_empty() || !record.is_empty() || was_quoted {
        record.push(field);
        records.push(record);
    }
    Ok(records)
}

/// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180). Text that a
/// spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, tab or carriage return:
/// OWASP "CSV injection") gets a leading `'`, which spreadsheets show as text; so does text
/// starting with `'` itself, so that ingest can take exactly one off ([`unescape`]).
pub fn field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r', '\'']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// A text field of a CSV as written by [`field`]: one leading `'` taken off.
pub fn unescape(field: &str) -> &str {
    field.strip_prefix('\'').unwrap_or(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_follow_rfc_4180_quoting() {
        assert_eq!(
            split_line("a,\"b,c\",\"d\"\"e\",").expect("fields"),
            vec!["a", "b,c", "d\"e", ""]
        );
        assert!(split_line("\"open").is_err());
    }

    #[test]
    fn documents_hold_quoted_line_breaks_and_skip_blank_lines() {
        let text = "name,notes\r\nAda,\"two\nlines, \"\"quoted\"\"\"\n\n\"\",last\nno newline,x";
        assert_eq!(
            records(text).expect("records"),
            vec![
                vec!["name", "notes"],
                vec!["Ada", "two\nlines, \"quoted\""],
                vec!["", "last"],
                vec!["no newline", "x"],
            ]
        );
        assert_eq!(
            records("a,\"b\n").unwrap_err(),
            "line 2: an unterminated quote"
        );
        assert!(records("a,b\"c\n").is_err());
        // What `field` writes, `records` reads back.
        let tricky = ["=1+1", "a,b", "say \"hi\"", "two\nlines", "'x", "plain"];
        let line: Vec<String> = tricky.iter().map(|t| field(t)).collect();
        let read = records(&line.join(",")).expect("records");
        let back: Vec<&str> = read[0].iter().map(|f| unescape(f)).collect();
        assert_eq!(back, tricky);
    }

    #[test]
    fn csv_text_is_never_a_formula_and_comes_back_unchanged() {
        for (text, written) in [
            (
                "=HYPERLINK(\"http://x\")",
                "\"'=HYPERLINK(\"\"http://x\"\")\"",
            ),
            ("+1+1", "'+1+1"),
            ("-1+1", "'-1+1"),
            ("@SUM(1)", "'@SUM(1)"),
            ("\tx", "'\tx"),
            ("\r=1", "\"'\r=1\""),
            ("'quoted", "''quoted"),
            ("stripe", "stripe"),
            ("a,b", "\"a,b\""),
        ] {
            assert_eq!(field(text), written, "{text:?}");
            let unquoted = written
                .strip_prefix('"')
                .and_then(|w| w.strip_suffix('"'))
                .map(|w| w.replace("\"\"", "\""))
                .unwrap_or_else(|| written.to_string());
            assert_eq!(unescape(&unquoted), text, "{text:?}");
        }
    }
}
