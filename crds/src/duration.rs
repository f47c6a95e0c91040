//! Durations in specs: `30s`, `15m`, `1h30m`, `7d`, `0s` (Go's `time.ParseDuration` units for
//! seconds to hours, plus `d` for days). Parsed once here so every component agrees.

use std::{borrow::Cow, fmt, str::FromStr};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The syntax of a duration; also the CRD schema's `pattern`.
pub const DURATION_PATTERN: &str = r"^(0|([0-9]{1,9}(ms|s|m|h|d))+)$";

/// A non-negative span of time written like `1h30m`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub std::time::Duration);

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "duration {0:?} is not valid: write a number followed by a unit (ms, s, m, h, d), optionally repeated, such as `30s`, `1h30m` or `7d`"
)]
pub struct InvalidDuration(String);

impl Duration {
    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(std::time::Duration::from_secs(secs))
    }

    /// The duration as a standard library value.
    pub const fn get(self) -> std::time::Duration {
        self.0
    }
}

impl FromStr for Duration {
    type Err = InvalidDuration;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || InvalidDuration(s.to_owned());
        if s == "0" {
            return Ok(Self::default());
        }
        if s.is_empty() {
            return Err(err());
        }
        let mut total = std::time::Duration::ZERO;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 9 {
                return Err(err());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| err())?;
            rest = &rest[digits..];
            let (unit, len) = if rest.starts_with("ms") {
                (std::time::Duration::from_millis(1), 2)
            } else {
                let secs = match rest.bytes().next() {
                    Some(b's') => 1,
                    Some(b'm') => 60,
                    Some(b'h') => 3600,
                    Some(b'd') => 86_400,
                    _ => return Err(err()),
                };
                (std::time::Duration::from_secs(secs), 1)
            };
            rest = &rest[len..];
            let part = unit.checked_mul(u32::try_from(n).map_err(|_| err())?);
            total = part.and_then(|p| total.checked_add(p)).ok_or_else(err)?;
        }
        Ok(Self(total))
    }
}

impl fmt::Display for Duration {
    /// The shortest form in the largest units: `90m` prints as `1h30m`, zero as `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut secs = self.0.as_secs();
        let millis = self.0.subsec_millis();
        if secs == 0 && millis == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
            if secs >= size {
                write!(f, "{}{unit}", secs / size)?;
                secs %= size;
            }
        }
        if millis > 0 {
            write!(f, "{millis}ms")?;
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            // Bounds the cost the API server estimates for the CEL rules that read durations.
            "maxLength": 64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_canonically() {
        for (input, secs, printed) in [
            ("0", 0, "0s"),
            ("0s", 0, "0s"),
            ("30s", 30, "30s"),
            ("90m", 5400, "1h30m"),
            ("1h30m", 5400, "1h30m"),
            ("24h", 86_400, "1d"),
            ("7d", 604_800, "7d"),
            ("1d2h3m4s", 93_784, "1d2h3m4s"),
        ] {
            let d: Duration = input.parse().unwrap();
            assert_eq!(d.get().as_secs(), secs, "{input}");
            assert_eq!(d.to_string(), printed, "{input}");
        }
        assert_eq!(
            "1500ms".parse::<Duration>().unwrap().get(),
            std::time::Duration::from_millis(1500)
        );
    }

    #[test]
    fn refuses_what_the_schema_pattern_refuses() {
        for bad in [
            "",
            "s",
            "10",
            "1.5h",
            "-1s",
            "1w",
            "1h ",
            " 1h",
            "1H",
            "1234567890s",
        ] {
            let err = bad.parse::<Duration>().unwrap_err();
            assert!(err.to_string().contains("such as `30s`"), "{bad}: {err}");
        }
    }

    #[test]
    fn round_trips_through_json() {
        let d: Duration = serde_json::from_str("\"2h\"").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"2h\"");
        assert!(serde_json::from_str::<Duration>("\"2 hours\"").is_err());
    }
}
