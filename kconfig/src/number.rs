//! Numbers the way the C library reads them for Kconfig: `strtoll`/`strtoull` (value, end,
//! overflow), `sym_string_valid` and `expr_parse_string`.

use std::cmp::Ordering;

use crate::tree::SymbolType;

/// What `strtoll` or `strtoull` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parsed<T> {
    pub(crate) value: T,
    /// Bytes consumed; 0 when no digits were found.
    pub(crate) end: usize,
    /// `errno == ERANGE`.
    pub(crate) overflow: bool,
}

/// Sign, digits and where they start, after `strto*`'s whitespace and base prefix rules.
fn scan(text: &str, base: u32) -> (bool, u32, usize, usize) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() && (bytes[i] == b' ' || (b'\t'..=b'\r').contains(&bytes[i])) {
        i += 1;
    }
    let mut negative = false;
    if i < bytes.len() && (bytes[i] == b'+' || bytes[i] == b'-') {
        negative = bytes[i] == b'-';
        i += 1;
    }
    let mut base = base;
    let hex_prefix = bytes.get(i) == Some(&b'0')
        && matches!(bytes.get(i + 1), Some(b'x' | b'X'))
        && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
    if (base == 16 || base == 0) && hex_prefix {
        base = 16;
        i += 2;
    } else if base == 0 {
        base = if bytes.get(i) == Some(&b'0') { 8 } else { 10 };
    }
    let digits = bytes[i..].iter().take_while(|b| (**b as char).is_digit(base)).count();
    (negative, base, i, digits)
}

/// `strtoll(text, &end, base)`.
pub(crate) fn strtoll(text: &str, base: u32) -> Parsed<i64> {
    let (negative, base, start, digits) = scan(text, base);
    if digits == 0 {
        return Parsed { value: 0, end: 0, overflow: false };
    }
    let mut magnitude: u128 = 0;
    let mut overflow = false;
    for b in &text.as_bytes()[start..start + digits] {
        magnitude = magnitude * u128::from(base) + u128::from((*b as char).to_digit(base).unwrap_or(0));
        if magnitude > u128::from(u64::MAX) + 1 {
            overflow = true;
            magnitude = u128::from(u64::MAX) + 1;
        }
    }
    let value = if negative {
        if magnitude > 1 << 63 {
            overflow = true;
            i64::MIN
        } else {
            (magnitude as i128).wrapping_neg() as i64
        }
    } else if magnitude > i64::MAX as u128 {
        overflow = true;
        i64::MAX
    } else {
        magnitude as i64
    };
    Parsed { value, end: start + digits, overflow }
}

/// `strtoull(text, &end, base)`.
pub(crate) fn strtoull(text: &str, base: u32) -> Parsed<u64> {
    let (negative, base, start, digits) = scan(text, base);
    if digits == 0 {
        return Parsed { value: 0, end: 0, overflow: false };
    }
    let mut value: u64 = 0;
    let mut overflow = false;
    for b in &text.as_bytes()[start..start + digits] {
        let digit = u64::from((*b as char).to_digit(base).unwrap_or(0));
        match value.checked_mul(u64::from(base)).and_then(|v| v.checked_add(digit)) {
            Some(v) => value = v,
            None => overflow = true,
        }
    }
    if overflow {
        value = u64::MAX;
    } else if negative {
        value = value.wrapping_neg();
    }
    Parsed { value, end: start + digits, overflow }
}

/// A number `expr_parse_string` produced.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Number {
    Signed(i64),
    Unsigned(u64),
}

impl Number {
    /// As `expr_calc_value` compares: unsigned when either side is.
    pub(crate) fn compare(self, other: Number) -> Ordering {
        match (self, other) {
            (Number::Signed(a), Number::Signed(b)) => a.cmp(&b),
            (a, b) => a.as_unsigned().cmp(&b.as_unsigned()),
        }
    }

    fn as_unsigned(self) -> u64 {
        match self {
            Number::Signed(v) => v as u64,
            Number::Unsigned(v) => v,
        }
    }
}

/// `expr_parse_string`: the number `text` is for a symbol of type `kind`, or `None` to compare
/// as strings.
pub(crate) fn parse_for_comparison(text: &str, kind: SymbolType) -> Option<Number> {
    let (number, parsed_end, overflow) = match kind {
        SymbolType::Bool | SymbolType::Tristate => {
            let value = match text {
                "n" => 0,
                "m" => 1,
                "y" => 2,
                _ => -1,
            };
            return Some(Number::Signed(value));
        }
        SymbolType::Int => {
            let parsed = strtoll(text, 10);
            (Number::Signed(parsed.value), parsed.end, parsed.overflow)
        }
        SymbolType::Hex => {
            let parsed = strtoull(text, 16);
            (Number::Unsigned(parsed.value), parsed.end, parsed.overflow)
        }
        SymbolType::String | SymbolType::Unknown => {
            let parsed = strtoll(text, 0);
            (Number::Signed(parsed.value), parsed.end, parsed.overflow)
        }
    };
    let complete =
        parsed_end > 0 && parsed_end == text.len() && text.as_bytes()[parsed_end - 1].is_ascii_hexdigit();
    (!overflow && complete).then_some(number)
}

/// `sym_string_valid` for int and hex values read from a `.config`.
pub(crate) fn valid(text: &str, kind: SymbolType) -> bool {
    match kind {
        SymbolType::Int => {
            let digits = text.strip_prefix('-').unwrap_or(text);
            !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && !(digits.starts_with('0') && digits.len() > 1)
        }
        SymbolType::Hex => {
            let digits = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")).unwrap_or(text);
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_hexdigit())
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_like_the_c_library() {
        assert_eq!(strtoll("0x1f", 16).value, 31);
        assert_eq!(strtoll("1f", 16).value, 31);
        assert_eq!(strtoll(" -12abc", 10), Parsed { value: -12, end: 4, overflow: false });
        assert_eq!(strtoll("0x", 16), Parsed { value: 0, end: 1, overflow: false });
        assert_eq!(strtoll("010", 0).value, 8);
        assert!(strtoll("99999999999999999999", 10).overflow);
        assert_eq!(strtoull("-1", 16).value, u64::MAX);
        assert!(parse_for_comparison("0x10", SymbolType::Unknown).is_some());
        assert!(parse_for_comparison("1.5", SymbolType::Unknown).is_none());
        assert!(
            valid("-5", SymbolType::Int) && !valid("05", SymbolType::Int) && !valid("-", SymbolType::Int)
        );
        assert!(
            valid("ff", SymbolType::Hex) && valid("0XFF", SymbolType::Hex) && !valid("0x", SymbolType::Hex)
        );
    }
}
