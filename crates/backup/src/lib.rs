//! Backups as svcdash streams them: an engine's dump goes through zstd compression
//! and age encryption into an object store, hashed on the way, with bounded memory
//! and no temporary file; a restore reads the object back, checks it and feeds the
//! engine's loader, counted and cancellable. Also the sealing of keys under the master key.

pub mod keys;
mod parts;
mod pipeline;
mod progress;
mod storage;

pub use pipeline::{PipelineOptions, Stored, download, upload};
pub use progress::{Tracked, Tracker};
pub use storage::BackupStorage;
