//! The tail-block writer at every tail length: after a write, the records' last
//! block holds 0 to 4096 bytes of them, and each length must survive the write,
//! a reopen (the tail block read back from disk) and the next write, which
//! rewrites that block whole. With Direct I/O on and off, on both drivers.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;

use common::on_both_drivers;
use stage6_broker::storage::aligned::ALIGN;
use stage6_broker::storage::segment::{LOG_EXTENSION, Segment, StoredBytes, file_name};
use stage6_broker::{AlignedBuf, IoDriver};

/// Room for 4097 steps, half of which cross into a new block.
const SEGMENT_SIZE: u64 = 12 << 20;
/// The file grows from 1 MiB on: the writes and reopens cross its grows too.
const STEP: u64 = 1 << 20;
/// Small, so that large steps also cross the "buffer full" path.
const BUFFER: usize = 3 * ALIGN;

/// The segment's bytes `from..to`, read through a new buffer.
async fn read_back(segment: &Segment, from: u64, to: u64) -> StoredBytes {
    segment
        .read(from, to, AlignedBuf::with_capacity(0).unwrap())
        .await
        .unwrap()
}

/// A new 1 MiB segment (the file's path beside it) with small buffers, in
/// a folder that lives as long as the returned guard.
async fn small_segment(direct_io: bool) -> (tempfile::TempDir, std::path::PathBuf, Segment) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file_name(0, LOG_EXTENSION));
    let segment = Segment::create(dir.path(), 0, 1 << 20, STEP, direct_io, 4 * ALIGN)
        .await
        .unwrap();
    (dir, path, segment)
}

/// Writes `bytes` at `at` in the segment file at `path` behind the segment's
/// back: a read that goes to the file sees them, one served from memory
/// does not, which is how these tests tell where a read's bytes came from.
fn overwrite_file(path: &std::path::Path, at: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, at).unwrap();
}

/// Bytes no two positions of which are alike for long: a misplaced block shows.
fn byte_at(position: u64) -> u8 {
    (position.wrapping_mul(2_654_435_761) >> 13) as u8 | 1
}

async fn every_tail_length(direct_io: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file_name(0, LOG_EXTENSION));
    let mut segment = Segment::create(dir.path(), 0, SEGMENT_SIZE, STEP, direct_io, BUFFER)
        .await
        .unwrap();
    for tail in 0..=ALIGN as u64 {
        // Even lengths: append into the next block (the write moves the tail
        // block); odd ones: grow the same tail block by a byte (the write
        // rewrites it in place).
        let end = segment.end();
        let block = end - end % ALIGN as u64;
        let new_end = if tail % 2 == 1 && end % ALIGN as u64 == tail - 1 {
            block + tail
        } else {
            block + ALIGN as u64 + tail
        };
        let bytes: Vec<u8> = (end..new_end).map(byte_at).collect();
        segment.append(&bytes).await.unwrap();
        segment.write().await.unwrap();
        assert_eq!(segment.end(), new_end);
        assert_eq!(segment.unwritten(), 0);

        // Reopen: the tail block comes back from the file.
        drop(segment);
        segment = Segment::open(&path, 0, SEGMENT_SIZE, STEP, direct_io)
            .await
            .unwrap();
        segment.resume(new_end, BUFFER).await.unwrap();

        // On disk, the block holding the end is the records, then zeros.
        let block = new_end - new_end % ALIGN as u64;
        let disk = segment
            .read_blocks(block, ALIGN, AlignedBuf::with_capacity(ALIGN).unwrap())
            .await
            .unwrap();
        let kept = (new_end - block) as usize;
        for (n, &byte) in disk.as_slice().iter().enumerate() {
            let expected = if n < kept {
                byte_at(block + n as u64)
            } else {
                0
            };
            assert_eq!(byte, expected, "tail {tail}: byte {n} of the tail block");
        }

        // The last bytes read back through the segment, across the tail block
        // (every few lengths: the whole file is compared at the end).
        if tail % 7 != 0 {
            continue;
        }
        let from = new_end.saturating_sub(2 * ALIGN as u64 + 17);
        let read = read_back(&segment, from, new_end).await;
        let expected: Vec<u8> = (from..new_end).map(byte_at).collect();
        assert!(read.as_slice() == expected, "tail {tail}: bytes read back");
    }

    // And everything, from the file alone.
    let end = segment.end();
    drop(segment);
    let file = std::fs::read(&path).unwrap();
    assert!(
        (end..=SEGMENT_SIZE).contains(&(file.len() as u64)),
        "the file covers the records, within the segment's size: {} bytes",
        file.len()
    );
    for (position, &byte) in (0..end).zip(&file) {
        assert_eq!(byte, byte_at(position), "byte {position} of the file");
    }
    assert!(
        file[end as usize..].iter().all(|&b| b == 0),
        "zeros after the records"
    );
}

#[test]
fn tail_block_every_length_survives_write_and_reopen_direct_io() {
    on_both_drivers(|_: IoDriver| every_tail_length(true));
}

#[test]
fn tail_block_every_length_survives_write_and_reopen_buffered() {
    on_both_drivers(|_: IoDriver| every_tail_length(false));
}

#[test]
fn tail_block_reads_span_file_and_buffer() {
    on_both_drivers(|_| async {
        let (_dir, _, mut segment) = small_segment(true).await;
        let bytes: Vec<u8> = (0..10_000).map(byte_at).collect();
        segment.append(&bytes[..6000]).await.unwrap();
        segment.write().await.unwrap();
        // Now bytes 0..4096 are only in the file, 4096..6000 in both, and
        // 6000..10000 only in the buffer.
        segment.append(&bytes[6000..]).await.unwrap();
        assert_eq!(segment.unwritten(), 4000);
        for (from, to) in [
            (0, 10_000),
            (1, 4095),
            (4000, 4200),
            (5999, 6001),
            (7000, 9999),
        ] {
            let read = read_back(&segment, from, to).await;
            assert_eq!(
                read.as_slice(),
                &bytes[from as usize..to as usize],
                "{from}..{to}"
            );
        }
    });
}

/// Appends of odd sizes, some written behind, each followed by reads that
/// cross the file, the write in flight and the write buffer.
async fn reads_while_writing(direct_io: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file_name(0, LOG_EXTENSION));
    let mut segment = Segment::create(dir.path(), 0, SEGMENT_SIZE, STEP, direct_io, BUFFER)
        .await
        .unwrap();
    let mut reads_in_flight = 0;
    for step in 0..700u64 {
        let end = segment.end();
        let len = [1, 100, 4095, 4096, 4097, 9000, 13][(step % 7) as usize];
        let bytes: Vec<u8> = (end..end + len).map(byte_at).collect();
        segment.append(&bytes).await.unwrap();
        if step % 3 == 0 {
            segment.write_behind().await.unwrap();
        }
        let new_end = segment.end();
        reads_in_flight += u64::from(segment.is_writing());
        let back = if step % 50 == 0 {
            new_end
        } else {
            3 * BUFFER as u64 + 5
        };
        for from in [new_end.saturating_sub(back), end, new_end.saturating_sub(1)] {
            let read = read_back(&segment, from, new_end).await;
            let expected: Vec<u8> = (from..new_end).map(byte_at).collect();
            assert!(
                read.as_slice() == expected,
                "step {step}: bytes {from}..{new_end}"
            );
        }
    }
    assert!(
        reads_in_flight > 100,
        "{reads_in_flight} reads met a write in flight"
    );
    segment.write().await.unwrap();
    assert!(!segment.is_writing());
    let end = segment.end();
    drop(segment);
    let file = std::fs::read(&path).unwrap();
    for (position, &byte) in (0..end).zip(&file) {
        assert_eq!(byte, byte_at(position), "byte {position} of the file");
    }
    assert!(file[end as usize..].iter().all(|&b| b == 0));
}

#[test]
fn tail_block_reads_while_a_write_is_in_flight_see_every_byte() {
    on_both_drivers(|_: IoDriver| async {
        reads_while_writing(true).await;
        reads_while_writing(false).await;
    });
}

#[test]
fn tail_block_the_last_completed_write_is_read_from_memory() {
    on_both_drivers(|_: IoDriver| async {
        let (_dir, path, mut segment) = small_segment(false).await;
        let bytes: Vec<u8> = (0..20_000).map(byte_at).collect();
        segment.append(&bytes[..9000]).await.unwrap();
        segment.write().await.unwrap();
        // Spoil the file's copy of the written blocks.
        overwrite_file(&path, 0, &[0xee; 8192]);
        let read = read_back(&segment, 0, 9000).await;
        assert_eq!(read.as_slice(), &bytes[..9000], "served from memory");
        // Two writes later, the first write's buffer is reused: those bytes
        // come from the file again (spoiled, which proves where they came from).
        segment.append(&bytes[9000..14_000]).await.unwrap();
        segment.write().await.unwrap();
        segment.append(&bytes[14_000..]).await.unwrap();
        segment.write().await.unwrap();
        let read = read_back(&segment, 0, 100).await;
        assert_eq!(read.as_slice(), &[0xee; 100][..], "read from the file");
        let read = read_back(&segment, 12_288, 20_000).await;
        assert_eq!(read.as_slice(), &bytes[12_288..], "the newest from memory");
    });
}

#[test]
fn tail_block_reads_in_order_are_served_by_the_read_ahead() {
    on_both_drivers(|_: IoDriver| async {
        let (_dir, path, mut segment) = small_segment(false).await;
        let bytes: Vec<u8> = (0..100_000).map(byte_at).collect();
        for chunk in bytes.chunks(10_000) {
            segment.append(chunk).await.unwrap();
            segment.write().await.unwrap();
        }
        let read = |from, to| read_back(&segment, from, to);
        // Two reads in order: the second starts the read ahead of the third's
        // blocks (12288..24576, and a block more).
        assert_eq!(read(0, 8000).await.as_slice(), &bytes[..8000]);
        assert_eq!(read(8000, 16_000).await.as_slice(), &bytes[8000..16_000]);
        compio::time::sleep(std::time::Duration::from_millis(200)).await;
        // Spoil the file's copy of those blocks.
        overwrite_file(&path, 12_288, &[0xee; 12_288]);
        assert_eq!(
            read(16_000, 24_000).await.as_slice(),
            &bytes[16_000..24_000],
            "read ahead, before the file was spoiled"
        );
        // A read out of order goes to the file, and finds the spoiled bytes.
        assert_eq!(read(13_000, 13_100).await.as_slice(), &[0xee; 100][..]);
        // Mended, then read in order to the end, into the bytes still in
        // memory: the read ahead stops where they start, and the last reads
        // take their first part from it and the rest from memory.
        overwrite_file(&path, 12_288, &bytes[12_288..24_576]);
        let mut from = 24_000;
        while from < bytes.len() as u64 {
            // The last read, from 72000, is twice as long as the read ahead
            // of it, which has no room for the part from memory.
            let to = if from >= 72_000 {
                bytes.len() as u64
            } else {
                from + 8000
            };
            let got = read(from, to).await;
            assert!(
                got.as_slice() == &bytes[from as usize..to as usize],
                "bytes {from}..{to}"
            );
            from = to;
        }
    });
}
