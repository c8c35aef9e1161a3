//! Backups as svcdash streams them: an engine's dump goes through zstd compression
//! and age encryption into an object store, hashed on the way, with bounded memory
//! and no temporary file; a restore reads the object back, checks it and feeds the
//! engine's loader, counted and cancellable. Also the sealing of keys under the master key.

mod frames;
pub mod keys;
mod parts;
mod pipeline;
mod progress;
mod ranges;
mod storage;

pub use frames::Frame;
pub use pipeline::{PipelineOptions, Stored, download, upload, upload_tapped};
pub use progress::{Tracked, Tracker};
pub use ranges::{read_range, verify};
pub use storage::BackupStorage;
