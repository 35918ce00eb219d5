//! Human durations in playbooks and on the command line: `90s`, `20m`, `2h`, `1h30m`, `1d`.

use std::time::Duration;

/// Parse a duration such as `30s`, `20m`, `1h30m`, `24h` or `2d`. A bare number is seconds.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".to_string());
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    let mut saw_unit = false;
    for character in text.chars() {
        if character.is_ascii_digit() {
            number.push(character);
            continue;
        }
        let unit = match character {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => {
                return Err(format!(
                    "`{text}` is not a duration: unexpected `{character}` (use s, m, h or d, e.g. `20m`, `1h30m`)"
                ));
            }
        };
        let value: u64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a duration: a unit needs a number before it"))?;
        total = total
            .checked_add(value.saturating_mul(unit))
            .ok_or_else(|| format!("`{text}` is too long a duration"))?;
        number.clear();
        saw_unit = true;
    }
    if !number.is_empty() || !saw_unit {
        return Err(format!(
            "`{text}` is not a duration: a number needs a unit after it (s, m, h or d)"
        ));
    }
    Ok(Duration::from_secs(total))
}

/// Render a duration compactly: `45s`, `12m30s`, `3h05m`, `2d04h`.
pub fn render(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds < 60 {
        format!("{seconds}s")
    } else if seconds < 3600 {
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    } else if seconds < 86_400 {
        format!("{}h{:02}m", seconds / 3600, (seconds % 3600) / 60)
    } else {
        format!("{}d{:02}h", seconds / 86_400, (seconds % 86_400) / 3600)
    }
}

/// `#[serde(default, deserialize_with = "duration::optional")]`: a step parameter given as
/// a human duration (`20m`); absent is `None`. Durations in parameters parse only here.
pub fn optional<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    let text: Option<String> = serde::Deserialize::deserialize(deserializer)?;
    text.map(|text| parse(&text).map_err(serde::de::Error::custom))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("20m"), Ok(Duration::from_secs(1200)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse("45"), Ok(Duration::from_secs(45)));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("").is_err());
        assert!(parse("5x").is_err());
        assert!(parse("m").is_err());
        assert!(parse("10m5").is_err());
    }

    #[test]
    fn optional_parameters_parse_here() {
        #[derive(serde::Deserialize)]
        struct Params {
            #[serde(default, deserialize_with = "optional")]
            timeout: Option<Duration>,
        }
        let given: Params = serde_json::from_value(serde_json::json!({"timeout": "20m"})).unwrap();
        assert_eq!(given.timeout, Some(Duration::from_secs(1200)));
        let absent: Params = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(absent.timeout, None);
        let wrong = serde_json::from_value::<Params>(serde_json::json!({"timeout": "5x"}));
        assert!(
            wrong
                .err()
                .unwrap()
                .to_string()
                .contains("is not a duration")
        );
    }

    #[test]
    fn renders_compactly() {
        assert_eq!(render(Duration::from_secs(45)), "45s");
        assert_eq!(render(Duration::from_secs(750)), "12m30s");
        assert_eq!(render(Duration::from_secs(3 * 3600 + 300)), "3h05m");
        assert_eq!(render(Duration::from_secs(2 * 86_400 + 4 * 3600)), "2d04h");
    }
}
