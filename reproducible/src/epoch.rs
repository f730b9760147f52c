//! The build's single timestamp, `SOURCE_DATE_EPOCH`.

use std::fmt;

/// Name of the environment variable defined by reproducible-builds.org.
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";

/// Seconds since 1970-01-01T00:00:00Z that stand for "when this was built".
///
/// Every timestamp kiln writes (archive mtimes, image `created`, history entries, PE and cpio
/// times) is derived from one `Epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Epoch(u64);

/// A `SOURCE_DATE_EPOCH` value that is not a whole number of seconds.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{SOURCE_DATE_EPOCH}={value:?} is not a non-negative whole number of seconds")]
pub struct EpochError {
    /// The rejected value, as given.
    pub value: String,
}

impl Epoch {
    /// 1970-01-01T00:00:00Z, the default when neither the environment nor a recipe sets a time.
    pub const UNIX: Epoch = Epoch(0);

    /// An epoch of `seconds` since 1970-01-01T00:00:00Z.
    pub const fn from_secs(seconds: u64) -> Self {
        Epoch(seconds)
    }

    /// Seconds since 1970-01-01T00:00:00Z.
    pub const fn as_secs(self) -> u64 {
        self.0
    }

    /// Resolves the epoch: an explicit `SOURCE_DATE_EPOCH` value wins over the recipe's default,
    /// which wins over [`Epoch::UNIX`].
    pub fn resolve(env_value: Option<&str>, recipe_default: Option<Epoch>) -> Result<Self, EpochError> {
        match env_value {
            Some(value) => Self::parse(value),
            None => Ok(recipe_default.unwrap_or(Epoch::UNIX)),
        }
    }

    /// [`Epoch::resolve`] with the value of `SOURCE_DATE_EPOCH` from this process's environment.
    /// An empty variable counts as unset, as in most tools that honour it.
    pub fn from_env(recipe_default: Option<Epoch>) -> Result<Self, EpochError> {
        let value = std::env::var_os(SOURCE_DATE_EPOCH);
        let value = value.as_ref().map(|v| v.to_string_lossy());
        match value.as_deref() {
            Some("") | None => Self::resolve(None, recipe_default),
            Some(value) => Self::resolve(Some(value), recipe_default),
        }
    }

    /// Parses a decimal number of seconds, as the SOURCE_DATE_EPOCH specification defines it.
    pub fn parse(value: &str) -> Result<Self, EpochError> {
        let error = || EpochError { value: value.to_owned() };
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(error());
        }
        value.parse().map(Epoch).map_err(|_| error())
    }

    /// The epoch as an RFC 3339 UTC timestamp, e.g. `2024-01-01T00:00:00Z`.
    pub fn to_rfc3339(self) -> String {
        let days = self.0 / 86_400;
        let rem = self.0 % 86_400;
        let (year, month, day) = civil_from_days(days);
        format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_recipe_default() {
        let recipe = Some(Epoch::from_secs(5));
        assert_eq!(Epoch::resolve(Some("7"), recipe), Ok(Epoch::from_secs(7)));
        assert_eq!(Epoch::resolve(None, recipe), Ok(Epoch::from_secs(5)));
        assert_eq!(Epoch::resolve(None, None), Ok(Epoch::UNIX));
    }

    #[test]
    fn rejects_values_that_are_not_whole_seconds() {
        for bad in ["", "-1", "1.5", "12a", " 1", "99999999999999999999999"] {
            let err = Epoch::parse(bad).unwrap_err();
            assert_eq!(err.value, bad);
            assert!(err.to_string().contains("SOURCE_DATE_EPOCH"));
        }
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(Epoch::UNIX.to_rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(Epoch::from_secs(951_782_400).to_rfc3339(), "2000-02-29T00:00:00Z");
        assert_eq!(Epoch::from_secs(1_700_000_000).to_rfc3339(), "2023-11-14T22:13:20Z");
        assert_eq!(Epoch::from_secs(4_102_444_799).to_rfc3339(), "2099-12-31T23:59:59Z");
    }
}
