//! Replies: the frontend's [`Reply`] written as RESP2 with `redis-protocol`,
//! and the constructors of the errors this crate answers itself.

use bytes::BytesMut;
use redis_protocol::resp2::encode::extend_encode;
use redis_protocol::resp2::types::BytesFrame;

pub(crate) use stele_frontends::redis::Reply;

/// RESP2's null array (`*-1`), which Redis answers for an EXEC whose WATCH
/// failed. `redis-protocol`'s frames have one null, the null bulk string
/// (`$-1`), so this one is written as its five bytes.
const NULL_ARRAY: &[u8] = b"*-1\r\n";

/// An error reply; `text` starts with its kind (`ERR`, `WRONGTYPE`, ...).
pub(crate) fn error(text: impl Into<String>) -> Reply {
    Reply::Error(text.into())
}

/// `+OK`.
pub(crate) fn ok() -> Reply {
    Reply::Status("OK".to_owned())
}

/// Appends `reply` to `out` as RESP2.
pub(crate) fn encode(reply: &Reply, out: &mut BytesMut) {
    if *reply == Reply::NilArray {
        out.extend_from_slice(NULL_ARRAY);
        return;
    }
    match frame(reply) {
        Some(frame) => {
            // Encoding into a growable buffer cannot fail for a well-formed
            // frame; a failure is a bug, answered as an error, not a panic.
            if let Err(error) = extend_encode(out, &frame, false) {
                tracing::error!(%error, "cannot encode a RESP reply");
                let _ = extend_encode(
                    out,
                    &BytesFrame::Error("ERR internal encoding error".into()),
                    false,
                );
            }
        }
        None => out.extend_from_slice(NULL_ARRAY),
    }
}

/// The frame of `reply` (`None`: the null array, which has no frame).
fn frame(reply: &Reply) -> Option<BytesFrame> {
    Some(match reply {
        Reply::Status(text) => BytesFrame::SimpleString(one_line(text).into_bytes().into()),
        Reply::Error(text) => BytesFrame::Error(one_line(text).into()),
        Reply::Int(value) => BytesFrame::Integer(*value),
        Reply::Bulk(bytes) => BytesFrame::BulkString(bytes.clone().into()),
        Reply::Nil => BytesFrame::Null,
        Reply::NilArray => return None,
        Reply::Array(items) => BytesFrame::Array(
            items
                .iter()
                .map(|item| frame(item).unwrap_or(BytesFrame::Null))
                .collect(),
        ),
    })
}

/// Simple strings and errors end at the first CR or LF: never let a message
/// (which may quote client input) break the framing.
fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

/// The encoded size of `reply`, to refuse a reply over the limit before
/// encoding it.
pub(crate) fn encoded_len(reply: &Reply) -> usize {
    const OVERHEAD: usize = 24;
    match reply {
        Reply::Status(text) | Reply::Error(text) => text.len() + OVERHEAD,
        Reply::Bulk(bytes) => bytes.len() + OVERHEAD,
        Reply::Int(_) | Reply::Nil | Reply::NilArray => OVERHEAD,
        Reply::Array(items) => OVERHEAD + items.iter().map(encoded_len).sum::<usize>(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(reply: &Reply) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(reply, &mut out);
        out.to_vec()
    }

    #[test]
    fn replies_encode_as_resp2() {
        assert_eq!(encoded(&ok()), b"+OK\r\n");
        assert_eq!(encoded(&Reply::Int(-3)), b":-3\r\n");
        assert_eq!(encoded(&Reply::Nil), b"$-1\r\n");
        assert_eq!(encoded(&Reply::NilArray), b"*-1\r\n");
        assert_eq!(encoded(&Reply::Bulk(vec![0xff, 0])), b"$2\r\n\xff\x00\r\n");
        assert_eq!(
            encoded(&Reply::Array(vec![Reply::Nil, Reply::Bulk(b"a".to_vec())])),
            b"*2\r\n$-1\r\n$1\r\na\r\n"
        );
        assert_eq!(encoded(&error("ERR a\r\nb")), b"-ERR a  b\r\n");
    }
}
