//! Calendar dates of Unix times in UTC, without a date library: for the timestamps
//! that views, reports, notifications and benchmark results print.

/// A UTC date and time of day (proleptic Gregorian calendar; year 0 is 1 BC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    /// Year.
    pub year: i64,
    /// Month, 1 to 12.
    pub month: u32,
    /// Day of the month, 1 to 31.
    pub day: u32,
    /// Hour, 0 to 23.
    pub hour: u32,
    /// Minute, 0 to 59.
    pub minute: u32,
    /// Second, 0 to 59.
    pub second: u32,
    /// Microseconds within the second, 0 to 999,999.
    pub micros: u32,
}

impl UtcTime {
    /// The time `micros` microseconds after the Unix epoch (before it when negative).
    pub fn from_unix_micros(micros: i64) -> UtcTime {
        let secs = micros.div_euclid(1_000_000);
        let mut t = UtcTime::from_unix_secs(secs);
        t.micros = micros.rem_euclid(1_000_000) as u32;
        t
    }

    /// The time `secs` seconds after the Unix epoch (before it when negative).
    pub fn from_unix_secs(secs: i64) -> UtcTime {
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400) as u32;
        UtcTime {
            year,
            month,
            day,
            hour: sod / 3600,
            minute: sod % 3600 / 60,
            second: sod % 60,
            micros: 0,
        }
    }

    /// `YYYY-MM-DD`.
    pub fn date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// `HH:MM:SS`.
    pub fn time_of_day(&self) -> String {
        format!("{:02}:{:02}:{:02}", self.hour, self.minute, self.second)
    }

    /// ISO 8601 to the second: `YYYY-MM-DDTHH:MM:SSZ`.
    pub fn iso8601(&self) -> String {
        format!("{}T{}Z", self.date(), self.time_of_day())
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (the well-known days-to-civil conversion through 400-year eras).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift to an era starting 0000-03-01, so leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // 0..=365, from March 1st
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        // 2000-02-29 is day 11016 (30 years with 7 leap days = 10957, + 31 + 28).
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        // 0001-01-01 is 719162 days before 1970 (1969 years of 365 days + 477 leap days).
        assert_eq!(civil_from_days(-719_162), (1, 1, 1));
        assert_eq!(civil_from_days(-719_163), (0, 12, 31));
    }

    #[test]
    fn times_of_day() {
        // 1_700_000_000 s = 2023-11-14 22:13:20 UTC.
        let t = UtcTime::from_unix_secs(1_700_000_000);
        assert_eq!(
            (t.date(), t.time_of_day(), t.iso8601()),
            (
                "2023-11-14".to_string(),
                "22:13:20".to_string(),
                "2023-11-14T22:13:20Z".to_string()
            )
        );
        // Half a second before the epoch: 1969-12-31 23:59:59.500000.
        let t = UtcTime::from_unix_micros(-500_000);
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second, t.micros),
            (1969, 12, 31, 23, 59, 59, 500_000)
        );
    }
}
