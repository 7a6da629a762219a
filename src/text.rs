//! Bounded text: messages, notes and warnings that must not grow with their input.

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

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn cuts_on_character_boundaries() {
        assert_eq!(cut("short", 10), "short");
        let long = "é".repeat(100);
        let c = cut(&long, 11);
        assert!(c.len() <= 11 && c.ends_with("..."), "{c}");
    }
}
