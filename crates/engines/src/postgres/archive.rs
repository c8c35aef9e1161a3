//! The layout of a custom-format `pg_dump` archive: where its table of contents
//! ends and where each table's data lies. Found while the dump streams into the
//! backup (nothing is held but the table of contents), it lets a restore read each
//! table's data on its own and load several tables at once.
//!
//! The format is `pg_dump`'s own (`pg_backup_archiver.c`, `pg_backup_custom.c`): a
//! header, the table of contents, then one block per entry with data, in the order
//! of the table of contents. Versions 1.12 to 1.16 are read; anything else, or
//! anything unexpected, gives no layout, and the backup restores as one stream.

use serde::{Deserialize, Serialize};

/// Where a dump's pieces lie, in bytes of the plain archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveLayout {
    /// The header and the table of contents are `0..toc_end`.
    pub toc_end: u64,
    /// Every data block, in the archive's order.
    pub blocks: Vec<DataBlock>,
    /// The archive's length.
    pub end: u64,
}

/// One entry's data: its block type, id and chunks, `start..end`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataBlock {
    pub dump_id: i32,
    pub start: u64,
    pub end: u64,
}

/// An entry of the table of contents, as much of it as a restore needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TocEntry {
    pub dump_id: i32,
    /// "TABLE DATA", "SEQUENCE SET", "INDEX", "FK CONSTRAINT", …
    pub desc: String,
    pub section: Section,
}

/// `pg_dump`'s sections (`teSection`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    None,
    PreData,
    Data,
    PostData,
}

/// The header and table of contents, read from their bytes.
#[derive(Debug, Clone)]
pub struct Toc {
    pub entries: Vec<TocEntry>,
    /// Bytes the header and table of contents take.
    pub len: usize,
    int_size: usize,
}

const MAGIC: &[u8] = b"PGDMP";
const CUSTOM_FORMAT: u8 = 1;
const BLK_DATA: u8 = 1;
const BLK_BLOBS: u8 = 3;
/// The most the head may take before the scanner gives up: the schema is the
/// tenant's, and svcdash holds the head in memory (during the backup, and once per
/// loader in a restore). Larger ones restore as one stream.
const MAX_TOC: usize = 32 << 20;

/// Why bytes could not be read as an archive's head.
#[derive(Debug, PartialEq, Eq)]
pub enum TocError {
    /// The bytes end before the table of contents does.
    Incomplete,
    /// They are not a table of contents this reader knows.
    Unreadable(String),
}

impl Toc {
    /// Reads the header and table of contents at the start of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Toc, TocError> {
        let mut r = Cursor { bytes, pos: 0, int_size: 4, off_size: 8 };
        if r.take(MAGIC.len())? != MAGIC {
            return Err(unreadable("not a pg_dump archive"));
        }
        let (major, minor, rev) = (r.byte()?, r.byte()?, r.byte()?);
        let version = (major, minor);
        if major != 1 || !(12..=16).contains(&minor) {
            return Err(unreadable(format!("archive version {major}.{minor}.{rev}")));
        }
        r.int_size = usize::from(r.byte()?);
        r.off_size = usize::from(r.byte()?);
        if !(1..=8).contains(&r.int_size) || !(1..=8).contains(&r.off_size) {
            return Err(unreadable("integer sizes out of range"));
        }
        if r.byte()? != CUSTOM_FORMAT {
            return Err(unreadable("not the custom format"));
        }
        if version >= (1, 15) {
            r.byte()?; // compression algorithm
        } else {
            r.int()?; // compression level
        }
        for _ in 0..7 {
            r.int()?; // creation time
        }
        r.string()?; // database name
        r.string()?; // server version
        r.string()?; // pg_dump version
        let count = r.int()?;
        let count = usize::try_from(count).map_err(|_| unreadable("negative entry count"))?;
        let mut entries = Vec::with_capacity(count.min(1 << 16));
        for _ in 0..count {
            let dump_id = r.int()?;
            r.int()?; // had a dumper
            r.string()?; // table oid
            r.string()?; // oid
            r.string()?; // tag
            let desc = r.string()?.unwrap_or_default();
            let section = match r.int()? {
                1 => Section::None,
                2 => Section::PreData,
                3 => Section::Data,
                4 => Section::PostData,
                other => return Err(unreadable(format!("section {other}"))),
            };
            for _ in 0..6 {
                r.string()?; // definition, drop, copy, namespace, tablespace, access method
            }
            if version >= (1, 16) {
                r.int()?; // relkind
            }
            r.string()?; // owner
            r.string()?; // "with oids", always false
            while r.string()?.is_some() {} // dependencies
            r.take(1 + r.off_size)?; // the data's offset, if the dump could seek
            entries.push(TocEntry {
                dump_id: i32::try_from(dump_id).map_err(|_| unreadable("dump id"))?,
                desc,
                section,
            });
        }
        Ok(Toc { entries, len: r.pos, int_size: r.int_size })
    }

    fn has_data(&self, dump_id: i32) -> bool {
        self.entries.iter().any(|e| e.dump_id == dump_id && e.section == Section::Data)
    }
}

fn unreadable(why: impl Into<String>) -> TocError {
    TocError::Unreadable(why.into())
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    int_size: usize,
    off_size: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TocError> {
        let end = self.pos.checked_add(n).ok_or(TocError::Incomplete)?;
        let out = self.bytes.get(self.pos..end).ok_or(TocError::Incomplete)?;
        self.pos = end;
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8, TocError> {
        Ok(self.take(1)?[0])
    }

    /// `ReadInt`: a sign byte, then `int_size` bytes, least significant first.
    fn int(&mut self) -> Result<i64, TocError> {
        let negative = self.byte()? != 0;
        let value = self.take(self.int_size)?.iter().rev().fold(0i64, |v, &b| (v << 8) | i64::from(b));
        Ok(if negative { -value } else { value })
    }

    /// `ReadStr`: a length (negative for NULL), then that many bytes.
    fn string(&mut self) -> Result<Option<String>, TocError> {
        let len = self.int()?;
        if len < 0 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| unreadable("string length"))?;
        Ok(Some(String::from_utf8_lossy(self.take(len)?).into_owned()))
    }
}

/// Reads an archive as it streams past and notes where its data blocks lie. It holds
/// the head until the table of contents is complete, then only a few bytes at a time.
#[derive(Debug, Default)]
pub struct Scanner {
    /// Bytes seen so far.
    pos: u64,
    head: Vec<u8>,
    /// The head's length at which to try reading the table of contents again.
    next_try: usize,
    toc: Option<Toc>,
    state: Block,
    /// The integer being read, and how many of its bytes are still to come.
    int: Vec<u8>,
    blocks: Vec<DataBlock>,
    failed: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Block {
    /// Before the first block, or between blocks: a block type comes next.
    #[default]
    Type,
    /// A block's id, of a plain data block or a large objects block.
    Id { blobs: bool },
    /// A chunk's length; 0 ends the block (or, in a large objects block, the object).
    ChunkLen { blobs: bool },
    /// Bytes of a chunk still to skip.
    Chunk { left: u64, blobs: bool },
    /// The next large object's oid; 0 ends the block.
    Oid,
}

impl Scanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sees the next bytes of the archive.
    pub fn observe(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.toc.is_none() {
            self.head.extend_from_slice(bytes);
            if self.head.len() > MAX_TOC {
                return self.fail(format!("no table of contents in the first {MAX_TOC} bytes"));
            }
            // Tried again only once the head has doubled: a large schema is not
            // read over and over.
            if self.head.len() >= self.next_try {
                self.read_toc();
            }
            return;
        }
        self.blocks_in(bytes);
    }

    fn read_toc(&mut self) {
        match Toc::parse(&self.head) {
            Ok(toc) => {
                let rest = self.head.split_off(toc.len);
                self.pos = toc.len as u64;
                self.toc = Some(toc);
                self.head = Vec::new();
                self.blocks_in(&rest);
            }
            Err(TocError::Incomplete) => self.next_try = self.head.len() * 2,
            Err(TocError::Unreadable(why)) => self.fail(why),
        }
    }

    fn blocks_in(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && self.failed.is_none() {
            let used = self.step(bytes);
            bytes = &bytes[used..];
        }
    }

    /// Takes what the current state needs from `bytes`; returns how many it used.
    fn step(&mut self, bytes: &[u8]) -> usize {
        let int_size = self.toc.as_ref().map_or(4, |t| t.int_size);
        match self.state {
            Block::Type => {
                let blobs = match bytes[0] {
                    BLK_DATA => false,
                    BLK_BLOBS => true,
                    other => {
                        self.fail(format!("block type {other} at byte {}", self.pos));
                        return bytes.len();
                    }
                };
                self.blocks.push(DataBlock { dump_id: 0, start: self.pos, end: self.pos });
                self.state = Block::Id { blobs };
                self.pos += 1;
                1
            }
            Block::Chunk { left, blobs } => {
                let n = left.min(bytes.len() as u64);
                self.state = match left - n {
                    0 => Block::ChunkLen { blobs },
                    left => Block::Chunk { left, blobs },
                };
                self.pos += n;
                n as usize
            }
            Block::Id { .. } | Block::ChunkLen { .. } | Block::Oid => {
                let want = 1 + int_size - self.int.len();
                let n = want.min(bytes.len());
                self.int.extend_from_slice(&bytes[..n]);
                self.pos += n as u64;
                if self.int.len() == 1 + int_size {
                    let value = Cursor { bytes: &self.int, pos: 0, int_size, off_size: 8 }.int().unwrap_or(-1);
                    self.int.clear();
                    self.next_int(value);
                }
                n
            }
        }
    }

    /// Moves on after an integer, the last of whose bytes was just seen.
    fn next_int(&mut self, value: i64) {
        self.state = match self.state {
            Block::Id { blobs } => {
                let known = i32::try_from(value).ok().filter(|id| self.toc.as_ref().is_some_and(|t| t.has_data(*id)));
                let Some(id) = known else {
                    return self.fail(format!("a data block of entry {value}, which has no data"));
                };
                self.blocks.last_mut().expect("a block was opened").dump_id = id;
                if blobs { Block::Oid } else { Block::ChunkLen { blobs } }
            }
            Block::ChunkLen { blobs } => match u64::try_from(value) {
                Ok(0) if blobs => Block::Oid,
                Ok(0) => self.end_block(),
                Ok(left) => Block::Chunk { left, blobs },
                Err(_) => return self.fail(format!("chunk length {value}")),
            },
            Block::Oid if value == 0 => self.end_block(),
            Block::Oid => Block::ChunkLen { blobs: true },
            Block::Type | Block::Chunk { .. } => unreachable!("no integer is read here"),
        };
    }

    fn end_block(&mut self) -> Block {
        self.blocks.last_mut().expect("a block was opened").end = self.pos;
        Block::Type
    }

    fn fail(&mut self, why: impl Into<String>) {
        self.failed = Some(why.into());
        self.head = Vec::new();
        self.blocks = Vec::new();
    }

    /// The layout, if the whole stream was an archive read to its end; else why not.
    pub fn finish(mut self) -> Result<ArchiveLayout, String> {
        if self.toc.is_none() && self.failed.is_none() {
            self.read_toc();
        }
        if let Some(why) = self.failed {
            return Err(why);
        }
        let Some(toc) = self.toc else { return Err("the stream ended inside the table of contents".into()) };
        if self.state != Block::Type || !self.int.is_empty() {
            return Err("the stream ended inside a data block".into());
        }
        Ok(ArchiveLayout { toc_end: toc.len as u64, blocks: self.blocks, end: self.pos })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real `pg_dump --format=custom --compress=0` (PostgreSQL 15) of a database
    /// with three tables (one empty), a sequence, an index, a foreign key and two
    /// large objects (see `testdata/README`).
    const DUMP: &[u8] = include_bytes!("testdata/small.dump");

    fn layout_in_pieces(piece: usize) -> ArchiveLayout {
        let mut scanner = Scanner::new();
        for bytes in DUMP.chunks(piece) {
            scanner.observe(bytes);
        }
        scanner.finish().unwrap()
    }

    #[test]
    fn the_table_of_contents_names_every_entry() {
        let toc = Toc::parse(DUMP).unwrap();
        let data: Vec<&str> =
            toc.entries.iter().filter(|e| e.section == Section::Data).map(|e| e.desc.as_str()).collect();
        assert_eq!(data.iter().filter(|d| **d == "TABLE DATA").count(), 3, "{data:?}");
        assert!(data.contains(&"SEQUENCE SET"), "{data:?}");
        assert!(data.contains(&"BLOBS"), "{data:?}");
        let post: Vec<&str> =
            toc.entries.iter().filter(|e| e.section == Section::PostData).map(|e| e.desc.as_str()).collect();
        assert!(post.contains(&"INDEX") && post.contains(&"FK CONSTRAINT"), "{post:?}");
        assert_eq!(Toc::parse(&DUMP[..toc.len - 1]).unwrap_err(), TocError::Incomplete);
    }

    #[test]
    fn data_blocks_are_found_however_the_stream_is_cut() {
        let whole = layout_in_pieces(DUMP.len());
        assert_eq!(whole.end, DUMP.len() as u64);
        assert_eq!(whole.blocks.len(), 4, "three tables and the large objects: {whole:?}");
        // The blocks follow the table of contents and each other without a gap.
        assert_eq!(whole.blocks[0].start, whole.toc_end);
        for pair in whole.blocks.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
        assert_eq!(whole.blocks.last().unwrap().end, whole.end);
        // Each block starts with its type and the id of an entry with data.
        let toc = Toc::parse(DUMP).unwrap();
        for block in &whole.blocks {
            let start = block.start as usize;
            assert!(matches!(DUMP[start], BLK_DATA | BLK_BLOBS));
            assert!(toc.has_data(block.dump_id));
        }
        for piece in [1, 2, 3, 7, 64, 1000] {
            assert_eq!(layout_in_pieces(piece), whole, "cut every {piece} bytes");
        }
    }

    #[test]
    fn anything_else_gives_no_layout() {
        let mut truncated = Scanner::new();
        truncated.observe(&DUMP[..DUMP.len() - 3]);
        assert!(truncated.finish().is_err());

        let mut text = Scanner::new();
        text.observe(b"--\n-- PostgreSQL database dump\n--\n");
        assert!(text.finish().unwrap_err().contains("not a pg_dump archive"));

        // A head that never ends is not held beyond the cap: here the database
        // name (its length at byte 51) says it is 2 GiB long.
        assert_eq!(DUMP[51..56], [0, 5, 0, 0, 0], "the name \"small\"");
        let mut endless = Scanner::new();
        endless.observe(&DUMP[..51]);
        endless.observe(&[0, 0xff, 0xff, 0xff, 0x7f]);
        let filler = vec![0u8; 1 << 20];
        for _ in 0..(MAX_TOC >> 20) + 1 {
            endless.observe(&filler);
        }
        assert!(endless.head.is_empty());
        assert!(endless.finish().unwrap_err().contains("no table of contents"));

        let toc = Toc::parse(DUMP).unwrap();
        let mut damaged = DUMP.to_vec();
        damaged[toc.len] = 9;
        let mut scanner = Scanner::new();
        scanner.observe(&damaged);
        assert!(scanner.finish().unwrap_err().contains("block type 9"));
    }
}
