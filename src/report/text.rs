//! Text from the report quoted in messages: control characters escaped
//! (so a cell cannot send escape sequences to a terminal or a log) and
//! cut short (so one huge cell cannot flood them).

/// The most characters of a cell a message quotes.
pub(crate) const QUOTED_CHARS: usize = 200;

/// `text` with control characters escaped (`\u{1b}`, `\n`), cut to
/// `max` characters with `…` after.
pub(crate) fn for_message(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max) + 4);
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_long_text_cut() {
        assert_eq!(for_message("a\u{1b}[2Jb\r\n", 50), "a\\u{1b}[2Jb\\r\\n");
        assert_eq!(for_message(&"x".repeat(300), 200).chars().count(), 201);
        assert_eq!(for_message("Müller", 3), "Mül…");
    }
}
