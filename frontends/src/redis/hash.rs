//! The stored form of one Redis hash (one value in [`super::HASHES_MAP`]):
//!
//! ```text
//! hash  = format fields...        format = 0x01 (HASH_FORMAT)
//! field = u32 BE len || name || u32 BE len || value
//! ```
//!
//! Fields are sorted byte-wise by name, names are unique, and there is at least one
//! field (Redis deletes a hash with its last field). The encoding is therefore a
//! function of the field set alone: equal hashes are equal bytes, whatever order the
//! fields were written in, which keeps write sets and WATCH digests deterministic.

use std::collections::BTreeMap;

/// The format byte that starts every encoded hash; a later format gets a new byte.
pub const HASH_FORMAT: u8 = 1;

/// Bytes of an encoded hash besides its names and values: the format byte.
const HEADER_BYTES: usize = 1;

/// Bytes of one field besides its name and value: two `u32` lengths.
const FIELD_OVERHEAD_BYTES: usize = 8;

/// A hash being edited: field name -> value, in byte-wise name order (a `BTreeMap`
/// of `Vec<u8>` orders byte-wise, which is the encoding's order).
pub type Fields = BTreeMap<Vec<u8>, Vec<u8>>;

/// A decoded hash: (name, value) slices of the stored bytes, in name order.
pub type DecodedHash<'a> = Vec<(&'a [u8], &'a [u8])>;

/// Why stored bytes are not a hash (only the generic language can write them: the
/// Redis ops write nothing else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashFormatError {
    /// The first byte is not [`HASH_FORMAT`] (or there is none).
    UnknownFormat,
    /// A length runs past the end.
    Truncated,
    /// Names are not strictly increasing.
    Unsorted,
    /// No field: an empty hash is stored as no value.
    Empty,
}

/// The size [`encode_hash`] would produce, without building it (to check a limit
/// first).
pub fn encoded_hash_len(fields: &Fields) -> usize {
    HEADER_BYTES
        + fields
            .iter()
            .map(|(name, value)| FIELD_OVERHEAD_BYTES + name.len() + value.len())
            .sum::<usize>()
}

/// Encodes a non-empty hash. Names and values must be shorter than 4 GiB (they are
/// bounded by the command limits far below that).
pub fn encode_hash(fields: &Fields) -> Vec<u8> {
    debug_assert!(!fields.is_empty(), "an empty hash is stored as no value");
    let mut bytes = Vec::with_capacity(encoded_hash_len(fields));
    bytes.push(HASH_FORMAT);
    for (name, value) in fields {
        put_length_prefixed(&mut bytes, name);
        put_length_prefixed(&mut bytes, value);
    }
    debug_assert_eq!(bytes.len(), encoded_hash_len(fields));
    bytes
}

fn put_length_prefixed(bytes: &mut Vec<u8>, part: &[u8]) {
    let len = u32::try_from(part.len()).expect("hash parts are bounded far below 4 GiB");
    bytes.extend_from_slice(&len.to_be_bytes());
    bytes.extend_from_slice(part);
}

/// Decodes strictly (so `encode_hash(decode_hash(b)) == b`): the fields, borrowed,
/// in name order.
pub fn decode_hash(bytes: &[u8]) -> Result<DecodedHash<'_>, HashFormatError> {
    let Some((&HASH_FORMAT, mut rest)) = bytes.split_first() else {
        return Err(HashFormatError::UnknownFormat);
    };
    let mut fields: DecodedHash<'_> = Vec::new();
    while !rest.is_empty() {
        let name = take_length_prefixed(&mut rest)?;
        let value = take_length_prefixed(&mut rest)?;
        if fields.last().is_some_and(|(previous, _)| *previous >= name) {
            return Err(HashFormatError::Unsorted);
        }
        fields.push((name, value));
    }
    if fields.is_empty() {
        return Err(HashFormatError::Empty);
    }
    Ok(fields)
}

fn take_length_prefixed<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], HashFormatError> {
    let (len, tail) = rest
        .split_first_chunk::<4>()
        .ok_or(HashFormatError::Truncated)?;
    let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|_| HashFormatError::Truncated)?;
    if tail.len() < len {
        return Err(HashFormatError::Truncated);
    }
    let (part, tail) = tail.split_at(len);
    *rest = tail;
    Ok(part)
}

/// The decoded fields as an editable map.
pub fn to_fields(decoded: &[(&[u8], &[u8])]) -> Fields {
    decoded
        .iter()
        .map(|(name, value)| (name.to_vec(), value.to_vec()))
        .collect()
}

/// The value of `name` in decoded fields (binary search: they are sorted).
pub fn field_value<'a>(decoded: &[(&'a [u8], &'a [u8])], name: &[u8]) -> Option<&'a [u8]> {
    decoded
        .binary_search_by(|(candidate, _)| (*candidate).cmp(name))
        .ok()
        .map(|index| decoded[index].1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fields(pairs: &[(&[u8], &[u8])]) -> Fields {
        pairs
            .iter()
            .map(|(name, value)| (name.to_vec(), value.to_vec()))
            .collect()
    }

    #[test]
    fn the_worked_example_of_docs_execution_md() {
        // HSET h b 2 a 1: fields sorted, so `a` first.
        let encoded = encode_hash(&fields(&[(b"b", b"2"), (b"a", b"1")]));
        let expected: &[u8] = &[
            0x01, // format
            0, 0, 0, 1, b'a', 0, 0, 0, 1, b'1', // a = 1
            0, 0, 0, 1, b'b', 0, 0, 0, 1, b'2', // b = 2
        ];
        assert_eq!(encoded, expected);
        assert_eq!(
            decode_hash(&encoded),
            Ok(vec![(&b"a"[..], &b"1"[..]), (&b"b"[..], &b"2"[..])])
        );
    }

    #[test]
    fn byte_wise_order_puts_prefixes_first_and_high_bytes_last() {
        let encoded = encode_hash(&fields(&[
            (b"\xff", b""),
            (b"ab", b""),
            (b"a", b""),
            (b"", b""),
        ]));
        let names: Vec<&[u8]> = decode_hash(&encoded)
            .expect("just encoded")
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(names, vec![&b""[..], b"a", b"ab", b"\xff"]);
    }

    #[test]
    fn malformed_bytes_are_refused() {
        let good = encode_hash(&fields(&[(b"a", b"1"), (b"b", b"2")]));
        assert_eq!(decode_hash(&[]), Err(HashFormatError::UnknownFormat));
        assert_eq!(decode_hash(&[2]), Err(HashFormatError::UnknownFormat));
        assert_eq!(decode_hash(&[HASH_FORMAT]), Err(HashFormatError::Empty));
        for cut in 2..good.len() {
            if cut == 11 {
                continue; // a whole first field: a valid one-field hash
            }
            assert_eq!(
                decode_hash(&good[..cut]),
                Err(HashFormatError::Truncated),
                "cut at {cut}"
            );
        }
        assert!(decode_hash(&good[..11]).is_ok());
        // The same two fields in the wrong order, then a duplicate.
        let mut swapped = vec![HASH_FORMAT];
        swapped.extend_from_slice(&good[11..]);
        swapped.extend_from_slice(&good[1..11]);
        assert_eq!(decode_hash(&swapped), Err(HashFormatError::Unsorted));
        let mut duplicate = good[..11].to_vec();
        duplicate.extend_from_slice(&good[1..11]);
        assert_eq!(decode_hash(&duplicate), Err(HashFormatError::Unsorted));
        // A length of 2^32 - 1 past the end.
        assert_eq!(
            decode_hash(&[HASH_FORMAT, 0xff, 0xff, 0xff, 0xff]),
            Err(HashFormatError::Truncated)
        );
    }

    #[test]
    fn field_lookup_finds_present_names_only() {
        let encoded = encode_hash(&fields(&[(b"a", b"1"), (b"c", b"3")]));
        let decoded = decode_hash(&encoded).expect("just encoded");
        assert_eq!(field_value(&decoded, b"a"), Some(&b"1"[..]));
        assert_eq!(field_value(&decoded, b"c"), Some(&b"3"[..]));
        assert_eq!(field_value(&decoded, b"b"), None);
    }

    proptest! {
        #[test]
        fn encoding_round_trips(
            pairs in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..8),
                 proptest::collection::vec(any::<u8>(), 0..8)),
                1..16,
            )
        ) {
            let forward: Fields = pairs.iter().cloned().collect();
            let encoded = encode_hash(&forward);
            prop_assert_eq!(encoded.len(), encoded_hash_len(&forward));
            let decoded = decode_hash(&encoded).expect("just encoded");
            prop_assert_eq!(to_fields(&decoded), forward);
        }
    }
}
