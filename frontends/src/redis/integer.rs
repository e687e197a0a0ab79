//! Integers in string values, exactly as Redis reads and writes them: INCRBY and
//! HINCRBY accept a stored value only if Redis's `string2ll` would, and store
//! the result as `ll2string` prints it.

/// Longest decimal `i64` accepted, in bytes: `-9223372036854775808` is 20 (Redis
/// refuses any string of `LONG_STR_SIZE` = 21 bytes or more before parsing).
pub const INTEGER_BYTES_MAX: usize = 20;

/// Parses `text` as Redis's `string2ll` does: an optional `-`, then `0` alone or a
/// digit 1-9 followed by digits, within `i64`. Refused: the empty string, `+`,
/// leading zeros (`007`), `-0`, any space, more than [`INTEGER_BYTES_MAX`] bytes.
pub fn parse_integer(text: &[u8]) -> Option<i64> {
    if text.is_empty() || text.len() > INTEGER_BYTES_MAX {
        return None;
    }
    if text == b"0" {
        return Some(0);
    }
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    // The first digit is 1-9: this refuses "", "-", "-0", "007" and "+1".
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut magnitude: u64 = 0;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return None;
        }
        magnitude = magnitude
            .checked_mul(10)?
            .checked_add(u64::from(digit - b'0'))?;
    }
    if negative {
        // -(2^63) is the one magnitude that fits negated but not positive.
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// `value` as Redis stores an integer: shortest decimal, `-` for negatives.
pub fn format_integer(value: i64) -> Vec<u8> {
    let text = value.to_string().into_bytes();
    debug_assert_eq!(
        parse_integer(&text),
        Some(value),
        "formatting must round trip"
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn canonical_integers_parse() {
        for (text, value) in [
            ("0", 0),
            ("1", 1),
            ("-1", -1),
            ("10", 10),
            ("-10", -10),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
            ("-9223372036854775807", i64::MIN + 1),
        ] {
            assert_eq!(parse_integer(text.as_bytes()), Some(value), "{text}");
        }
    }

    #[test]
    fn what_string2ll_refuses_is_refused() {
        for text in [
            "",
            "-",
            "-0",
            "00",
            "007",
            "-007",
            "+1",
            " 1",
            "1 ",
            "1\n",
            "1.0",
            "1e3",
            "0x10",
            "--1",
            "9223372036854775808",   // i64::MAX + 1
            "-9223372036854775809",  // i64::MIN - 1
            "18446744073709551616",  // u64 overflow, 20 chars
            "99999999999999999999",  // u64 overflow, 20 chars
            "100000000000000000000", // 21 chars
            "-00000000000000000001", // 21 chars
            "١",                     // a non-ASCII digit
        ] {
            assert_eq!(parse_integer(text.as_bytes()), None, "{text:?}");
        }
    }

    #[test]
    fn twenty_chars_is_the_limit() {
        let twenty = b"-9223372036854775808";
        assert_eq!(twenty.len(), INTEGER_BYTES_MAX);
        assert_eq!(parse_integer(twenty), Some(i64::MIN));
        // 20 chars but leading zeros: refused for the zeros, not the length.
        assert_eq!(parse_integer(b"00000000000000000001"), None);
    }

    #[test]
    fn formatting_is_plain_decimal() {
        assert_eq!(format_integer(0), b"0");
        assert_eq!(format_integer(-42), b"-42");
        assert_eq!(format_integer(i64::MIN), b"-9223372036854775808");
    }

    proptest! {
        #[test]
        fn every_i64_round_trips(value in any::<i64>()) {
            prop_assert_eq!(parse_integer(&format_integer(value)), Some(value));
        }

        #[test]
        fn only_canonical_text_parses(text in "[-+ 0-9]{0,21}") {
            // Accepted exactly when the text is the canonical form of its value.
            match parse_integer(text.as_bytes()) {
                Some(value) => prop_assert_eq!(format_integer(value), text.as_bytes()),
                None => prop_assert!(
                    text.parse::<i64>().map_or(true, |value| value.to_string() != text)
                ),
            }
        }
    }
}
