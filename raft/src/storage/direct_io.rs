//! Whether a data dir's file system takes direct writes (`O_DIRECT`), so
//! that RocksDB's flushes and compactions may bypass the page cache.
//!
//! A flush or compaction writes a file once, sequentially, and reads it
//! back only through RocksDB's own caches or much later: copying those
//! bytes into the page cache first was the largest single cost of a shard
//! move (docs/raft-storage.md "Direct writes"). Some file systems (tmpfs
//! on older kernels, some overlay and network mounts) refuse `O_DIRECT`;
//! there RocksDB would fail every flush, so the probe decides per data
//! dir, once, at open.
//!
//! Invariant: the probe leaves nothing behind in the dir it probed, and a
//! failure of any kind answers "no" (buffered writes, as before).

use std::path::Path;

/// The probe file's name inside the data dir (removed again at once).
const PROBE_FILE: &str = "DIRECT_IO_PROBE";

/// The block written by the probe, and its alignment: direct I/O needs
/// buffers, offsets and lengths aligned to the device's logical block
/// (4 KiB covers every common device).
const BLOCK: usize = 4096;

/// Returns whether files in `dir` (created if missing) accept a direct
/// write of one aligned block. Never fails: any error answers `false`.
pub fn takes_direct_writes(dir: &Path) -> bool {
    if std::fs::create_dir_all(dir).is_err() {
        return false;
    }
    let probe = dir.join(PROBE_FILE);
    let written = write_one_block(&probe);
    // Best effort: a probe file that cannot be removed is harmless
    // (RocksDB ignores files it does not know) and is removed next time.
    let _ = std::fs::remove_file(&probe);
    written.is_ok()
}

/// Writes one aligned block to `path` with `O_DIRECT`.
#[cfg(target_os = "linux")]
fn write_one_block(path: &Path) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)?;
    let buffer = vec![0u8; 2 * BLOCK];
    let start = buffer.as_ptr().align_offset(BLOCK);
    file.write_all(&buffer[start..start + BLOCK])?;
    file.sync_data()
}

/// Direct writes are only used on Linux.
#[cfg(not(target_os = "linux"))]
fn write_one_block(_path: &Path) -> std::io::Result<()> {
    Err(std::io::Error::other(
        "direct writes are only probed on Linux",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: the probe creates a missing dir, answers, and leaves the dir
    // as empty as it found it.
    #[test]
    fn the_probe_leaves_nothing_behind() {
        let parent = tempfile::tempdir().expect("temp dir");
        let dir = parent.path().join("fresh");
        let _ = takes_direct_writes(&dir);
        assert!(dir.is_dir(), "the missing dir was created");
        let left: Vec<_> = std::fs::read_dir(&dir).expect("read dir").collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }

    // Goal: a dir that cannot exist answers "no" instead of failing.
    #[test]
    fn a_dir_that_cannot_be_made_answers_no() {
        let parent = tempfile::tempdir().expect("temp dir");
        let file = parent.path().join("a-file");
        std::fs::write(&file, b"x").expect("write a file");
        assert!(!takes_direct_writes(&file.join("below")));
    }
}
