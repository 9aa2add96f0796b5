//! Appending and polling through the index, in every append mode.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use stage1_file_log::stream::{INDEX_FILE, LOG_FILE};
use stage1_file_log::{AppendMode, Error, HEADER_LEN, Message, Stream};

fn payload(n: u64) -> Vec<u8> {
    // Lengths vary (including empty) so every record starts at a different place.
    vec![n as u8; (n % 7 * 13) as usize]
}

fn filled(dir: &std::path::Path, mode: AppendMode, count: u64) -> Stream {
    let mut stream = Stream::open(1, dir, mode).unwrap();
    for n in 0..count {
        assert_eq!(stream.append(Message::new(n + 100, payload(n))).unwrap(), n);
    }
    stream
}

#[test]
fn append_then_poll_at_every_offset() {
    for mode in AppendMode::ALL {
        let dir = tempfile::tempdir().unwrap();
        let stream = filled(dir.path(), mode, 50);
        for offset in 0..50 {
            for count in [1, 3, 50] {
                let messages = stream.poll(offset, count).unwrap();
                let expected = count.min(50 - offset);
                assert_eq!(messages.len() as u64, expected, "{mode:?} {offset} {count}");
                for (message, n) in messages.iter().zip(offset..) {
                    assert_eq!((message.offset, message.id), (n, n + 100));
                    assert_eq!(message.payload, payload(n));
                }
            }
        }
    }
}

#[test]
fn poll_past_the_end_returns_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let stream = filled(dir.path(), AppendMode::KeptHandle, 5);
    assert!(stream.poll(5, 10).unwrap().is_empty());
    assert!(stream.poll(u64::MAX, u64::MAX).unwrap().is_empty());
    assert!(stream.poll(0, 0).unwrap().is_empty());
    assert_eq!(stream.poll(3, u64::MAX).unwrap().len(), 2);
}

#[test]
fn poll_on_an_empty_stream_returns_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let stream = Stream::open(1, dir.path(), AppendMode::KeptHandle).unwrap();
    assert!(stream.poll(0, 10).unwrap().is_empty());
}

#[test]
fn reopen_continues_offsets() {
    let dir = tempfile::tempdir().unwrap();
    drop(filled(dir.path(), AppendMode::SyncEveryAppend, 10));
    let mut stream = Stream::open(1, dir.path(), AppendMode::KeptHandle).unwrap();
    assert_eq!(stream.next_offset(), 10);
    assert_eq!(stream.recovery().index_entries_rebuilt, 0);
    assert_eq!(
        stream.append(Message::new(0, b"more".to_vec())).unwrap(),
        10
    );
    drop(stream);

    let stream = Stream::open(1, dir.path(), AppendMode::OpenPerAppend).unwrap();
    let all = stream.poll(0, 100).unwrap();
    assert_eq!(all.len(), 11);
    assert!(all.iter().zip(0..).all(|(m, n)| m.offset == n));
    assert_eq!(all[10].payload, b"more");
}

#[test]
fn log_full_is_an_error_at_the_limit_not_a_wrap_around() {
    let dir = tempfile::tempdir().unwrap();
    let record = (HEADER_LEN + 10) as u64;
    let mut stream =
        Stream::open_with_limit(1, dir.path(), AppendMode::KeptHandle, 3 * record).unwrap();
    for _ in 0..3 {
        stream.append(Message::new(0, vec![1; 10])).unwrap();
    }
    match stream.append(Message::new(0, vec![1; 10])) {
        Err(Error::LogFull {
            log_len,
            record_len,
            limit,
        }) => assert_eq!(
            (log_len, record_len, limit),
            (3 * record, record, 3 * record)
        ),
        other => panic!("expected LogFull, got {other:?}"),
    }
    // The refused record left no trace, and a smaller one still fits nowhere.
    assert_eq!(stream.next_offset(), 3);
    assert_eq!(stream.log_len(), 3 * record);
    assert!(stream.append(Message::new(0, Vec::new())).is_err());
    assert_eq!(stream.poll(0, 10).unwrap().len(), 3);
}

#[test]
fn log_full_at_the_real_4_gib_limit_of_a_u32_position() {
    // One record whose payload makes the log 30 bytes short of 4 GiB; the file
    // is sparse, so the test writes a header and not 4 GiB.
    let dir = tempfile::tempdir().unwrap();
    let log_len = u64::from(u32::MAX) - 30;
    let payload_len = (log_len - HEADER_LEN as u64) as u32;
    let mut header = Vec::new();
    header.extend_from_slice(&0u64.to_le_bytes());
    header.extend_from_slice(&7u64.to_le_bytes());
    header.extend_from_slice(&payload_len.to_le_bytes());
    let log = std::fs::File::create(dir.path().join(LOG_FILE)).unwrap();
    std::io::Write::write_all(&mut &log, &header).unwrap();
    log.set_len(log_len).unwrap();
    std::fs::write(dir.path().join(INDEX_FILE), 0u32.to_le_bytes()).unwrap();

    let mut stream = Stream::open(1, dir.path(), AppendMode::KeptHandle).unwrap();
    assert_eq!((stream.next_offset(), stream.log_len()), (1, log_len));
    // 20 + 11 bytes would end one byte past u32::MAX: refused, nothing written.
    assert!(matches!(
        stream.append(Message::new(1, vec![0; 11])),
        Err(Error::LogFull { limit, .. }) if limit == u64::from(u32::MAX)
    ));
    // 20 + 10 bytes end exactly at u32::MAX, and its position still fits a u32.
    assert_eq!(stream.append(Message::new(2, vec![9; 10])).unwrap(), 1);
    let last = stream.poll(1, 1).unwrap();
    assert_eq!((last[0].id, &last[0].payload[..]), (2, &[9; 10][..]));
}

#[test]
fn append_batch_writes_the_same_bytes_as_one_append_per_message() {
    for mode in AppendMode::ALL {
        let one_by_one = tempfile::tempdir().unwrap();
        drop(filled(one_by_one.path(), mode, 20));
        let batched = tempfile::tempdir().unwrap();
        let mut stream = Stream::open(1, batched.path(), mode).unwrap();
        let batch = |range: std::ops::Range<u64>| range.map(|n| Message::new(n + 100, payload(n)));
        assert_eq!(stream.append_batch(batch(0..7)).unwrap(), 0..7);
        assert_eq!(stream.append_batch(batch(7..20)).unwrap(), 7..20);
        assert_eq!(stream.append_batch(batch(20..20)).unwrap(), 20..20);
        drop(stream);
        for file in [LOG_FILE, INDEX_FILE] {
            let expected = std::fs::read(one_by_one.path().join(file)).unwrap();
            let actual = std::fs::read(batched.path().join(file)).unwrap();
            assert_eq!(actual, expected, "{mode:?} {file}");
        }
    }
}

#[test]
fn append_batch_past_the_limit_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let record = (HEADER_LEN + 10) as u64;
    let mut stream =
        Stream::open_with_limit(1, dir.path(), AppendMode::KeptHandle, 3 * record).unwrap();
    let batch = || (0..4).map(|n| Message::new(n, vec![1; 10]));
    assert!(matches!(
        stream.append_batch(batch()),
        Err(Error::LogFull { record_len, .. }) if record_len == 4 * record
    ));
    assert_eq!((stream.next_offset(), stream.log_len()), (0, 0));
    assert_eq!(stream.append_batch(batch().take(3)).unwrap(), 0..3);
}
