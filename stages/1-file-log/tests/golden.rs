//! The talk's hexdump, byte for byte: the record layout is a promise.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use stage1_file_log::{AppendMode, Message, Stream, hexdump, stream::LOG_FILE};

/// The 50 bytes of "hello" (offset 0, id 1) and "world" (offset 1, id 2).
const HELLO_WORLD: [u8; 50] = [
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x05, 0x00, 0x00, 0x00, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x77, 0x6f, 0x72,
    0x6c, 0x64,
];

/// The listing the book shows, kept as a file so the book includes it verbatim.
const GOLDEN_HEXDUMP: &str = include_str!("golden/hello-world.hexdump");

fn hello_world() -> [Message; 2] {
    [
        Message {
            offset: 0,
            id: 1,
            payload: b"hello".to_vec(),
        },
        Message {
            offset: 1,
            id: 2,
            payload: b"world".to_vec(),
        },
    ]
}

#[test]
fn golden_as_bytes_reproduces_the_talks_hexdump() {
    let bytes: Vec<u8> = hello_world()
        .iter()
        .flat_map(|message| message.as_bytes().unwrap())
        .collect();
    assert_eq!(bytes, HELLO_WORLD);
    assert_eq!(hexdump(&bytes), GOLDEN_HEXDUMP);
}

#[test]
fn golden_from_bytes_reads_the_talks_hexdump() {
    let [hello, world] = hello_world();
    assert_eq!(Message::from_bytes(&HELLO_WORLD).unwrap(), hello);
    assert_eq!(Message::from_bytes(&HELLO_WORLD[25..]).unwrap(), world);
}

#[test]
fn golden_stream_writes_exactly_these_bytes_to_its_log() {
    let dir = tempfile::tempdir().unwrap();
    for mode in AppendMode::ALL {
        let stream_dir = dir.path().join(mode.name());
        let mut stream = Stream::open(1, &stream_dir, mode).unwrap();
        for message in hello_world() {
            stream
                .append(Message::new(message.id, message.payload))
                .unwrap();
        }
        let log = std::fs::read(stream_dir.join(LOG_FILE)).unwrap();
        assert_eq!(log, HELLO_WORLD, "{mode:?}");
    }
}
