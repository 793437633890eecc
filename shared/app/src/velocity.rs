//! Failed-payment velocity limits for guests (card testing): too many declines on one invoice,
//! or from one client address, within an hour and further attempts are refused (429) before
//! the gateway is called. Counts live in sliding windows estimated from two fixed ones, so a
//! burst across a window boundary is still caught.

use domain::{InvoiceNumber, OrgSlug};
use time::{Duration, OffsetDateTime};

use crate::ports::WindowCounts;

pub const WINDOW: Duration = Duration::hours(1);
/// Declines on one invoice per hour before attempts on it are refused: the sixth gets 429.
pub const PER_INVOICE: u32 = 5;
/// Declines from one client address per hour, across all orgs (card testers spread out).
pub const PER_CLIENT: u32 = 10;

/// The keys a guest payment is counted under, and their limits.
pub fn keys(org: &OrgSlug, invoice: &InvoiceNumber, client: Option<&str>) -> Vec<(String, u32)> {
    let mut keys = vec![(format!("inv#{org}#{invoice}"), PER_INVOICE)];
    if let Some(client) = client {
        keys.push((format!("ip#{client}"), PER_CLIENT));
    }
    keys
}

/// The fixed window `now` is in.
pub fn window_index(now: OffsetDateTime) -> i64 {
    now.unix_timestamp().div_euclid(WINDOW.whole_seconds())
}

/// When counters of window `index` are no longer needed (they serve as "previous" for one more
/// window).
pub fn expires_at(index: i64) -> OffsetDateTime {
    let end = (index + 2) * WINDOW.whole_seconds();
    OffsetDateTime::from_unix_timestamp(end).unwrap_or(OffsetDateTime::now_utc())
}

/// Declines in the last hour, estimated: the previous window's count weighted by how much of
/// it still overlaps the last hour, plus the current window's.
pub fn estimate(counts: WindowCounts, now: OffsetDateTime) -> u32 {
    let length = WINDOW.whole_seconds();
    let into_current = now.unix_timestamp().rem_euclid(length);
    let overlap = u64::from(counts.previous) * (length - into_current) as u64 / length as u64;
    counts.current + overlap as u32
}

/// If any key is over its limit: how long until an attempt may be made again.
pub fn refusal(
    limits: &[(String, u32)],
    counts: &[WindowCounts],
    now: OffsetDateTime,
) -> Option<Duration> {
    let over = limits
        .iter()
        .zip(counts)
        .any(|((_, limit), c)| estimate(*c, now) >= *limit);
    // Until the current window ends: by then the estimate has dropped by at least a window's share.
    let left = WINDOW.whole_seconds() - now.unix_timestamp().rem_euclid(WINDOW.whole_seconds());
    over.then(|| Duration::seconds(left.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn counts(current: u32, previous: u32) -> WindowCounts {
        WindowCounts { current, previous }
    }

    #[test]
    fn the_previous_window_counts_by_its_overlap() {
        let quarter_past = datetime!(2026-11-26 10:15 UTC);
        // 45 of the previous window's 60 minutes are still within the last hour.
        assert_eq!(estimate(counts(1, 4), quarter_past), 1 + 3);
        let on_the_hour = datetime!(2026-11-26 10:00 UTC);
        assert_eq!(estimate(counts(0, 5), on_the_hour), 5);
    }

    #[test]
    fn the_limit_is_reached_at_its_count_and_names_a_wait() {
        let now = datetime!(2026-11-26 10:59:30 UTC);
        let limits = keys(
            &OrgSlug::parse("demo").unwrap(),
            &InvoiceNumber::parse("INV-1").unwrap(),
            Some("203.0.113.9"),
        );
        assert_eq!(refusal(&limits, &[counts(4, 0), counts(0, 0)], now), None);
        assert_eq!(
            refusal(&limits, &[counts(5, 0), counts(0, 0)], now),
            Some(Duration::seconds(30))
        );
        assert!(refusal(&limits, &[counts(0, 0), counts(10, 0)], now).is_some());
    }

    #[test]
    fn a_burst_across_the_boundary_is_caught() {
        // Five declines at 10:59, then at 11:01 the estimate still sees most of them.
        let just_after = datetime!(2026-11-26 11:01 UTC);
        assert!(estimate(counts(0, 5), just_after) >= 4);
        assert!(
            refusal(
                &keys(
                    &OrgSlug::parse("demo").unwrap(),
                    &InvoiceNumber::parse("I").unwrap(),
                    None
                ),
                &[counts(1, 5)],
                just_after
            )
            .is_some()
        );
    }
}
