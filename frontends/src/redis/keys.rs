//! Redis keys (bytes) as KV keys (`String`): [`key_name`] and its inverse
//! [`key_bytes`].
//!
//! A key that is valid UTF-8 and does not start with NUL names itself, so the keys
//! clients actually use stay readable in the ledger and through the generic
//! language. Anything else is `"\0hex:"` followed by the lowercase hex of its bytes.
//! The two forms cannot collide: a readable name never starts with NUL, an escaped
//! one always does, and the escape is taken only for keys the readable form cannot
//! hold, so each KV key has exactly one Redis key ([`key_bytes`] refuses the rest).

/// What starts the escaped form of a key name.
pub const ESCAPED_KEY_PREFIX: &str = "\u{0}hex:";

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// True if `key` is its own KV key name.
fn is_readable(key: &[u8]) -> bool {
    key.first() != Some(&0) && std::str::from_utf8(key).is_ok()
}

/// The KV key under which Redis key `key` is stored (in both maps).
pub fn key_name(key: &[u8]) -> String {
    if is_readable(key) {
        // Checked just above; `from_utf8_lossy` would copy the same bytes.
        return String::from_utf8_lossy(key).into_owned();
    }
    let mut name = String::with_capacity(ESCAPED_KEY_PREFIX.len() + 2 * key.len());
    name.push_str(ESCAPED_KEY_PREFIX);
    name.push_str(&to_hex(key));
    debug_assert!(name.starts_with('\u{0}'));
    name
}

/// The Redis key stored under KV key `name`: the inverse of [`key_name`]. `None` if
/// no Redis key has that name (an escape with bad hex, uppercase hex, or bytes that
/// would have been readable).
pub fn key_bytes(name: &str) -> Option<Vec<u8>> {
    if !name.starts_with('\u{0}') {
        return Some(name.as_bytes().to_vec());
    }
    let key = from_hex(name.strip_prefix(ESCAPED_KEY_PREFIX)?)?;
    // Canonical form only: a readable key has exactly one name, the readable one.
    if is_readable(&key) {
        return None;
    }
    Some(key)
}

/// Lowercase hex.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    let mut hex = String::with_capacity(2 * bytes.len());
    for byte in bytes {
        hex.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(HEX_DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
}

/// Parses lowercase hex (uppercase is refused, so every byte string has one form).
pub(crate) fn from_hex(hex: &str) -> Option<Vec<u8>> {
    let digits = hex.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |digit: u8| match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    };
    digits
        .chunks_exact(2)
        .map(|pair| Some((nibble(pair[0])? << 4) | nibble(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn readable_keys_name_themselves() {
        assert_eq!(key_name(b"user:1"), "user:1");
        assert_eq!(key_name(b""), "");
        assert_eq!(key_name("clé".as_bytes()), "clé");
        assert_eq!(key_name(b"a\x00b"), "a\u{0}b"); // NUL inside is fine
        assert_eq!(key_bytes("user:1"), Some(b"user:1".to_vec()));
        assert_eq!(key_bytes(""), Some(Vec::new()));
    }

    #[test]
    fn other_keys_are_escaped() {
        assert_eq!(key_name(b"\xff\x00"), "\u{0}hex:ff00");
        assert_eq!(key_name(b"\x00abc"), "\u{0}hex:00616263");
        assert_eq!(key_bytes("\u{0}hex:ff00"), Some(vec![0xff, 0x00]));
        assert_eq!(key_bytes("\u{0}hex:00616263"), Some(b"\x00abc".to_vec()));
    }

    #[test]
    fn names_no_key_has_are_refused() {
        for name in [
            "\u{0}",
            "\u{0}hex",
            "\u{0}hex:f",      // odd length
            "\u{0}hex:FF",     // uppercase
            "\u{0}hex:zz",     // not hex
            "\u{0}hex:",       // the empty key is readable: ""
            "\u{0}hex:616263", // "abc" is readable
            "\u{0}HEX:ff",     // wrong prefix
            "\u{0}hex:ff ",    // trailing space
        ] {
            assert_eq!(key_bytes(name), None, "{name:?}");
        }
    }

    #[test]
    fn hex_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(from_hex(&to_hex(&all)), Some(all));
        assert_eq!(to_hex(&[0x0a, 0xb0]), "0ab0");
    }

    #[test]
    fn every_short_key_round_trips_and_names_are_distinct() {
        // Exhaustive over keys of up to two bytes from an alphabet with NUL, ASCII,
        // a UTF-8 lead byte, a continuation byte and an invalid byte.
        let alphabet = [0x00, b'a', b'0', 0xc3, 0xa9, 0xff];
        let mut keys = vec![Vec::new()];
        for &a in &alphabet {
            keys.push(vec![a]);
            for &b in &alphabet {
                keys.push(vec![a, b]);
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for key in &keys {
            let name = key_name(key);
            assert_eq!(key_bytes(&name).as_ref(), Some(key), "{key:?}");
            assert!(names.insert(name), "two keys share a name: {key:?}");
        }
    }

    proptest! {
        #[test]
        fn key_bytes_inverts_key_name(key in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(key_bytes(&key_name(&key)), Some(key));
        }

        #[test]
        fn key_name_inverts_key_bytes(name in "\\PC{0,16}|\\x00hex:[0-9a-fA-F]{0,8}") {
            if let Some(key) = key_bytes(&name) {
                prop_assert_eq!(key_name(&key), name);
            }
        }

        #[test]
        fn utf8_keys_are_readable(text in "[^\\x00]\\PC{0,16}") {
            prop_assert_eq!(key_name(text.as_bytes()), text);
        }
    }
}
