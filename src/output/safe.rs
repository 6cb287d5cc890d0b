//! Text from the report made safe for where it is shown. Group names,
//! owners and messages come from ordinary users (anyone can name a group),
//! so they are neither run as spreadsheet formulas nor sent to a terminal
//! as control sequences.

use std::borrow::Cow;

/// The first characters that make a spreadsheet read a cell as a formula
/// (OWASP's list for CSV injection).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A CSV cell that Excel, LibreOffice or Google Sheets will not run: one
/// that starts like a formula gets a leading `'` (which they show as
/// text and hide). Other cells are unchanged.
pub(crate) fn csv_cell(text: &str) -> Cow<'_, str> {
    if text.starts_with(FORMULA_STARTS) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// Text for a terminal: control characters (ESC, BEL, backspace, CR, …)
/// written as escapes (`\u{1b}`), so a name cannot clear the screen or
/// fake output. Line breaks are kept; a table cell may wrap.
pub(crate) fn terminal(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && c != '\n') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() && c != '\n' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_other_cells_kept() {
        for formula in [
            "=HYPERLINK(\"http://evil\",\"x\")",
            "+cmd|'/C calc'!A0",
            "@SUM(1+1)",
            "-2+3",
            "\tx",
            "\rx",
        ] {
            assert_eq!(csv_cell(formula), format!("'{formula}"));
        }
        for text in ["Sales", "", "a=b", "Team -2", "'quoted"] {
            assert_eq!(csv_cell(text), text);
        }
    }

    #[test]
    fn control_characters_are_escaped_for_the_terminal() {
        assert_eq!(
            terminal("\u{1b}[2JSales\u{7}\u{8}"),
            "\\u{1b}[2JSales\\u{7}\\u{8}"
        );
        assert_eq!(terminal("Multi\r\nline"), "Multi\\r\nline");
        assert_eq!(terminal("Команда ✓"), "Команда ✓");
    }
}
