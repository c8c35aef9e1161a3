//! A backup read in pieces: where its pieces lie (recorded when it was taken) and
//! the reads a parallel restore makes of them, each counted by the restore's
//! progress and stopped by its cancel.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use backup::keys::BackupKey;
use backup::{BackupStorage, Frame, Tracker};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncRead;

/// Compressed frames of this many plain bytes, for backups an engine can restore in
/// pieces: a read starts at most this far before its piece; a frame's end costs
/// compression a moment's pause.
pub const FRAME_SIZE: u64 = 32 << 20;

/// What the store keeps of a backup's layout.
#[derive(Debug, Serialize, Deserialize)]
pub struct Layout {
    pub frames: Vec<Frame>,
    /// The engine's own layout of its dump.
    pub engine: serde_json::Value,
}

/// Reads of one backup object.
pub struct ObjectPieces {
    storage: BackupStorage,
    object_key: String,
    key: BackupKey,
    frames: Vec<Frame>,
    tracker: Arc<Tracker>,
    /// The ranges read so far. Every loader of a PostgreSQL restore reads the
    /// archive's head again; progress counts it once, so that it ends at the
    /// backup's size.
    read: Mutex<HashSet<(u64, u64)>>,
}

impl ObjectPieces {
    pub fn new(
        storage: BackupStorage,
        object_key: String,
        key: BackupKey,
        frames: Vec<Frame>,
        tracker: Arc<Tracker>,
    ) -> Self {
        Self { storage, object_key, key, frames, tracker, read: Mutex::default() }
    }

    /// Whether `start..end` is read for the first time.
    fn first_read(&self, start: u64, end: u64) -> bool {
        self.read.lock().unwrap_or_else(|p| p.into_inner()).insert((start, end))
    }
}

impl engines::BackupPieces for ObjectPieces {
    fn read(&self, start: u64, end: u64) -> Box<dyn AsyncRead + Send + Unpin> {
        let reader = backup::read_range(&self.storage, &self.object_key, self.key.identity(), &self.frames, start, end);
        match self.first_read(start, end) {
            true => Box::new(self.tracker.track(reader)),
            false => Box::new(self.tracker.track_again(reader)),
        }
    }
}
