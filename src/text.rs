//! Text for people: messages, notes and warnings that must not grow with their input, and
//! strings from user input (object names, file paths, values quoted in messages) with control
//! characters escaped, so that a manifest cannot move the cursor, recolour or erase a reviewer's
//! terminal (`\x1b[2K`), nor forge extra lines in text output.

use std::borrow::Cow;

/// `s` cut to at most `max` bytes on a character boundary, with `...` when cut.
pub fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// `s` with every control character (C0, DEL, C1) and the bidirectional overrides written as
/// `\u{..}` escapes; unchanged, and not copied, when there is none.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_character_boundaries() {
        assert_eq!(cut("short", 10), "short");
        let long = "é".repeat(100);
        let c = cut(&long, 11);
        assert!(c.len() <= 11 && c.ends_with("..."), "{c}");
    }

    #[test]
    fn escapes_terminal_controls_and_keeps_the_rest() {
        assert!(matches!(printable("Pod/web in shop"), Cow::Borrowed(_)));
        assert_eq!(printable("a\u{1b}[2Kb"), "a\\u{1b}[2Kb");
        assert_eq!(printable("x\ny\r"), "x\\u{a}y\\u{d}");
        assert_eq!(printable("\u{202e}evil"), "\\u{202e}evil");
        assert_eq!(printable("Grüße ☃"), "Grüße ☃");
    }
}
