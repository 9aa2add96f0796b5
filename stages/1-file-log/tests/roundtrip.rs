//! Encoding then decoding gives back the same message, whatever it holds.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use proptest::prelude::*;
use stage1_file_log::{HEADER_LEN, Message, RecordError};

fn any_message() -> impl Strategy<Value = Message> {
    // Mostly small payloads, sometimes up to 1 MiB, and the empty one included.
    let payload = prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => proptest::collection::vec(any::<u8>(), 0..(1 << 20)),
    ];
    (any::<u64>(), any::<u64>(), payload).prop_map(|(offset, id, payload)| Message {
        offset,
        id,
        payload,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn roundtrip_as_bytes_then_from_bytes(message in any_message()) {
        let bytes = message.as_bytes().unwrap();
        prop_assert_eq!(bytes.len(), HEADER_LEN + message.payload.len());
        prop_assert_eq!(Message::from_bytes(&bytes).unwrap(), message);
    }

    #[test]
    fn roundtrip_ignores_bytes_after_the_record(message in any_message(), extra in any::<Vec<u8>>()) {
        let mut bytes = message.as_bytes().unwrap();
        bytes.extend_from_slice(&extra);
        prop_assert_eq!(Message::from_bytes(&bytes).unwrap(), message);
    }

    #[test]
    fn roundtrip_every_prefix_is_truncated_never_a_panic(message in any_message(), cut in any::<prop::sample::Index>()) {
        let bytes = message.as_bytes().unwrap();
        let cut = cut.index(bytes.len());
        let is_truncated = matches!(
            Message::from_bytes(&bytes[..cut]),
            Err(RecordError::Truncated { .. })
        );
        prop_assert!(is_truncated);
    }

    #[test]
    fn roundtrip_arbitrary_bytes_decode_or_fail_cleanly(bytes in any::<Vec<u8>>()) {
        if let Ok(message) = Message::from_bytes(&bytes) {
            prop_assert!(message.encoded_len() <= bytes.len());
            prop_assert_eq!(&message.as_bytes().unwrap()[..], &bytes[..message.encoded_len()]);
        }
    }
}

#[test]
fn roundtrip_empty_payload() {
    let message = Message::new(7, Vec::new());
    let bytes = message.as_bytes().unwrap();
    assert_eq!(bytes.len(), HEADER_LEN);
    assert_eq!(Message::from_bytes(&bytes).unwrap(), message);
}
