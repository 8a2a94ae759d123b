//! Human durations (`90s`, `5m`, `1h30m`, `2d`, `250ms`) for `token --ttl` and
//! `tail --since`, and the `--since SEQ|DURATION` choice.
//!
//! Kept apart from the commands so the parsing is tested on its own; a bare number is a
//! sequence number for `--since` but seconds for `--ttl`, so each caller decides.

use std::time::Duration;

/// Parses `<n><unit>` pieces, units `ms`, `s`, `m`, `h`, `d`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || format!("{text:?} is not a duration (e.g. 90s, 5m, 1h30m, 2d, 250ms)");
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total_ms: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let (number, tail) = rest.split_at(digits);
        let n: u64 = number.parse().map_err(|_| bad())?;
        let unit_len = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(unit_len);
        let ms_per = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        total_ms = n
            .checked_mul(ms_per)
            .and_then(|v| total_ms.checked_add(v))
            .ok_or_else(|| format!("{text:?} is too long a duration"))?;
        rest = tail;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Where `tail` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// Every event after this sequence number (`subscribe_session` with `sinceSeq`).
    Seq(u64),
    /// Every event of the last window (`request_history`, then live).
    Ago(Duration),
}

/// A bare integer is a sequence number; anything with a unit is a duration.
pub fn parse_since(text: &str) -> Result<Since, String> {
    let text = text.trim();
    if let Ok(seq) = text.parse::<u64>() {
        return Ok(Since::Seq(seq));
    }
    parse_duration(text)
        .map(Since::Ago)
        .map_err(|_| format!("{text:?} is neither a sequence number nor a duration (e.g. 5m)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok: &[(&str, u64)] = &[
            ("90", 90_000),
            ("90s", 90_000),
            ("5m", 300_000),
            ("1h", 3_600_000),
            ("1h30m", 5_400_000),
            ("2d", 172_800_000),
            ("250ms", 250),
            ("1m30s500ms", 90_500),
            (" 10s ", 10_000),
        ];
        for (text, ms) in ok {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(*ms)),
                "{text}"
            );
        }
        for bad in [
            "",
            "h",
            "5x",
            "1.5h",
            "-5m",
            "5 m",
            "m5",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn since() {
        assert_eq!(parse_since("42"), Ok(Since::Seq(42)));
        assert_eq!(parse_since("0"), Ok(Since::Seq(0)));
        assert_eq!(parse_since("5m"), Ok(Since::Ago(Duration::from_secs(300))));
        assert!(parse_since("yesterday").is_err());
        assert!(parse_since("-1").is_err());
    }
}
