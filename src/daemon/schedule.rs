//! When the next scan is due: the earliest time any cron pattern names,
//! in the schedule's time zone, plus jitter.
//!
//! Pure functions of the time given, so tests choose the clock.

use std::time::Duration;

use jiff::{Timestamp, Zoned};

use super::config::{CronPattern, ScheduleConfig, Zone};

/// The cron patterns of `[schedule]` in their time zone.
#[derive(Clone, Debug)]
pub(crate) struct Schedule {
    patterns: Vec<CronPattern>,
    zone: Zone,
    jitter: Duration,
}

/// A scheduled time and the moment to act on it (the time plus jitter).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Tick {
    /// The time a pattern names, in the schedule's time zone.
    pub scheduled: Zoned,
    /// When to start the scan: the scheduled time plus jitter.
    pub due: Timestamp,
}

impl Schedule {
    /// The schedule of a `[schedule]` section.
    pub(crate) fn new(config: &ScheduleConfig) -> Schedule {
        Schedule {
            patterns: config.patterns(),
            zone: config.timezone.clone(),
            jitter: config.jitter(),
        }
    }

    /// The patterns as written, for logs.
    pub(crate) fn describe(&self) -> String {
        let patterns: Vec<&str> = self.patterns.iter().map(|p| p.text.as_str()).collect();
        format!("{} ({})", patterns.join(", "), self.zone.name)
    }

    /// The first scheduled time strictly after `after`, or `None` when no
    /// pattern names a time again (a date that never comes).
    pub(crate) fn next_after(&self, after: Timestamp) -> Option<Zoned> {
        let start = after.to_zoned(self.zone.zone.clone());
        self.patterns
            .iter()
            .filter_map(|p| p.cron.find_next_occurrence(&start, false).ok())
            .min_by_key(Zoned::timestamp)
    }

    /// The next tick after `after`, its jitter drawn from `random` (a
    /// fraction in [0, 1)).
    pub(crate) fn next_tick(&self, after: Timestamp, random: f64) -> Option<Tick> {
        let scheduled = self.next_after(after)?;
        let jitter = self.jitter.mul_f64(random.clamp(0.0, 1.0));
        let due = scheduled
            .timestamp()
            .checked_add(jiff::SignedDuration::try_from(jitter).unwrap_or_default())
            .unwrap_or(scheduled.timestamp());
        Some(Tick { scheduled, due })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn schedule(section: &str) -> Schedule {
        let config = parse(&format!("[schedule]\n{section}\n")).unwrap();
        Schedule::new(&config.schedule.unwrap())
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn weekdays_at_six_skip_the_weekend() {
        let s = schedule("cron = \"0 6 * * 1-5\"");
        // Friday 2026-11-20 07:00 UTC: next is Monday 06:00.
        let next = s.next_after(at("2026-11-20T07:00:00Z")).unwrap();
        assert_eq!(next.timestamp(), at("2026-11-23T06:00:00Z"));
    }

    #[test]
    fn times_are_in_the_schedule_time_zone() {
        let s = schedule("cron = \"0 6 * * *\"\ntimezone = \"Europe/Berlin\"");
        // 06:00 in Berlin is 05:00 UTC in winter, 04:00 UTC in summer.
        let winter = s.next_after(at("2026-11-20T00:00:00Z")).unwrap();
        assert_eq!(winter.timestamp(), at("2026-11-20T05:00:00Z"));
        let summer = s.next_after(at("2026-07-01T00:00:00Z")).unwrap();
        assert_eq!(summer.timestamp(), at("2026-07-01T04:00:00Z"));
    }

    #[test]
    fn the_earliest_of_several_patterns_wins() {
        let s = schedule("cron = \"0 18 * * *\"\ncrons = [\"0 6 * * *\", \"0 12 * * *\"]");
        let next = s.next_after(at("2026-11-20T07:00:00Z")).unwrap();
        assert_eq!(next.timestamp(), at("2026-11-20T12:00:00Z"));
    }

    #[test]
    fn a_tick_is_strictly_after_the_time_given() {
        let s = schedule("cron = \"0 6 * * *\"");
        let next = s.next_after(at("2026-11-20T06:00:00Z")).unwrap();
        assert_eq!(next.timestamp(), at("2026-11-21T06:00:00Z"));
    }

    #[test]
    fn seconds_are_a_sixth_field_in_front() {
        let s = schedule("cron = \"*/10 * * * * *\"");
        let next = s.next_after(at("2026-11-20T06:00:01Z")).unwrap();
        assert_eq!(next.timestamp(), at("2026-11-20T06:00:10Z"));
    }

    #[test]
    fn jitter_delays_the_due_time_within_its_bound() {
        let s = schedule("cron = \"0 6 * * *\"\njitter = \"5m\"");
        let after = at("2026-11-20T00:00:00Z");
        let none = s.next_tick(after, 0.0).unwrap();
        assert_eq!(none.due, at("2026-11-20T06:00:00Z"));
        let half = s.next_tick(after, 0.5).unwrap();
        assert_eq!(half.due, at("2026-11-20T06:02:30Z"));
        assert_eq!(half.scheduled.timestamp(), at("2026-11-20T06:00:00Z"));
    }

    #[test]
    fn a_time_that_never_comes_gives_no_tick() {
        let s = schedule("cron = \"0 0 30 2 *\"");
        assert_eq!(s.next_after(at("2026-11-20T00:00:00Z")), None);
    }
}
