//! Wall-clock dates for result file names and reports (calendar from
//! `walker_abi::dates`).

use std::time::{SystemTime, UNIX_EPOCH};
use walker_abi::dates::UtcTime;

/// `YYYY-MM-DD` and `YYYY-MM-DD HH:MM:SS UTC` for a Unix time in seconds.
pub fn format_utc(unix_secs: i64) -> (String, String) {
    let t = UtcTime::from_unix_secs(unix_secs);
    let date = t.date();
    let time = format!("{date} {} UTC", t.time_of_day());
    (date, time)
}

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        // 1_700_000_000 s = 2023-11-14 22:13:20 UTC.
        assert_eq!(
            format_utc(1_700_000_000),
            (
                "2023-11-14".to_string(),
                "2023-11-14 22:13:20 UTC".to_string()
            )
        );
    }
}
