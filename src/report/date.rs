//! `YYYY-MM-DD` dates as day numbers.
//!
//! Rules compare dates millions of times per scan; a plain day count
//! (days since 1970-01-01) keeps that to an integer subtraction.

/// Days since 1970-01-01 of a `YYYY-MM-DD` date, or `None` when the text is
/// not a valid calendar date.
pub(crate) fn parse_day(text: &[u8]) -> Option<i32> {
    if text.len() != 10 || text[4] != b'-' || text[7] != b'-' {
        return None;
    }
    let year = digits(&text[0..4])? as i32;
    let month = digits(&text[5..7])?;
    let day = digits(&text[8..10])?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// The `YYYY-MM-DD` text of a day number.
pub(crate) fn format_day(days: i32) -> String {
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}")
}

fn digits(text: &[u8]) -> Option<u32> {
    text.iter().try_fold(0u32, |acc, byte| {
        byte.is_ascii_digit()
            .then(|| acc * 10 + u32::from(byte - b'0'))
    })
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's days_from_civil / civil_from_days.
fn days_from_civil(year: i32, month: u32, day: u32) -> i32 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = month as i32;
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day as i32 - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i32) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i32::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_known_dates() {
        assert_eq!(parse_day(b"1970-01-01"), Some(0));
        assert_eq!(parse_day(b"2000-03-01"), Some(11_017));
        for text in ["2024-02-29", "2026-11-25", "1999-12-31", "2100-01-01"] {
            assert_eq!(format_day(parse_day(text.as_bytes()).unwrap()), text);
        }
    }

    #[test]
    fn differences_are_calendar_days() {
        let a = parse_day(b"2026-08-27").unwrap();
        let b = parse_day(b"2026-11-25").unwrap();
        assert_eq!(b - a, 90);
    }

    #[test]
    fn rejects_what_is_not_a_date() {
        for text in [
            "2023-02-29",
            "2026-13-01",
            "2026-00-10",
            "26-11-25",
            "2026/11/25",
            "N/A",
            "",
            "2026-11-25T00:00:00",
        ] {
            assert_eq!(parse_day(text.as_bytes()), None, "{text}");
        }
    }
}
