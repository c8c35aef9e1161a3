//! A backup read in pieces: where its pieces lie (recorded when it was taken) and
//! the reads a parallel restore makes of them, each counted by the restore's
//! progress and stopped by its cancel.

use std::sync::Arc;

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
    pub storage: BackupStorage,
    pub object_key: String,
    pub key: BackupKey,
    pub frames: Vec<Frame>,
    pub tracker: Arc<Tracker>,
}

impl engines::BackupPieces for ObjectPieces {
    fn read(&self, start: u64, end: u64) -> Box<dyn AsyncRead + Send + Unpin> {
        let reader = backup::read_range(&self.storage, &self.object_key, self.key.identity(), &self.frames, start, end);
        Box::new(self.tracker.track(reader))
    }
}
