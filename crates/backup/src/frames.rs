//! Compression in independent zstd frames. A backup whose engine can restore its
//! pieces at once (a PostgreSQL archive's tables, say) is compressed as a series of
//! frames of at most a few tens of MiB, and where each one starts is recorded: a
//! restore can then begin decompressing close to any place in the stream instead of
//! at its start. The output is still one valid zstd stream (`zstd -d` reads the
//! frames one after another), so a downloaded backup is unchanged for its owner.

use std::io::{self, Write};

use serde::{Deserialize, Serialize};
use zstd::stream::raw::{Encoder, InBuffer, Operation, OutBuffer};
use zstd::zstd_safe::CParameter;

/// Where a frame starts: in the plain stream, and in the compressed stream (the
/// encrypted object's plaintext).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    pub plain: u64,
    pub compressed: u64,
}

/// The input of one zstd worker's job. zstd's own choice at the levels used here
/// (four windows, 4 MiB at level 2) kept about 48 MiB in flight with two workers
/// (jobs being filled, compressed and flushed, and their output); 2 MiB jobs keep
/// about 30 MiB, for about 6 % more CPU time and 0.1 % more output (the pipeline
/// example on a 454 MiB PostgreSQL dump). The backup's peak is what it costs the
/// server beside its engines.
const JOB_SIZE: u32 = 2 << 20;

/// A zstd encoder that ends a frame after every `frame_size` bytes of input (or
/// writes one frame, without a size) and notes where each began.
pub(crate) struct FramedEncoder<W: Write> {
    raw: Encoder<'static>,
    out: W,
    buf: Vec<u8>,
    frame_size: Option<u64>,
    /// Input bytes in the frame being written; 0 before its first byte.
    in_frame: u64,
    plain: u64,
    compressed: u64,
    frames: Vec<Frame>,
    /// A frame has ended since the context was last set up.
    ended: bool,
}

impl<W: Write> FramedEncoder<W> {
    pub(crate) fn new(out: W, level: i32, workers: u32, frame_size: Option<u64>) -> io::Result<Self> {
        let mut raw = Encoder::new(level)?;
        if workers > 0 {
            raw.set_parameter(CParameter::NbWorkers(workers))?;
            raw.set_parameter(CParameter::JobSize(JOB_SIZE))?;
        }
        Ok(Self {
            raw,
            out,
            buf: Vec::with_capacity(zstd::zstd_safe::CCtx::out_size()),
            frame_size: frame_size.filter(|s| *s > 0),
            in_frame: 0,
            plain: 0,
            compressed: 0,
            frames: Vec::new(),
            ended: false,
        })
    }

    fn begin_frame(&mut self) -> io::Result<()> {
        if self.ended {
            self.raw.reinit()?;
            self.ended = false;
        }
        self.frames.push(Frame { plain: self.plain, compressed: self.compressed });
        Ok(())
    }

    fn drain(&mut self) -> io::Result<()> {
        self.out.write_all(&self.buf)?;
        self.compressed += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    fn end_frame(&mut self) -> io::Result<()> {
        loop {
            let left = self.raw.finish(&mut OutBuffer::around(&mut self.buf), false)?;
            self.drain()?;
            if left == 0 {
                break;
            }
        }
        self.in_frame = 0;
        self.ended = true;
        Ok(())
    }

    /// Ends the last frame; gives back the output and where every frame began.
    pub(crate) fn finish(mut self) -> io::Result<(W, Vec<Frame>)> {
        if self.frames.is_empty() {
            // No input: one empty frame, as a plain zstd stream of nothing.
            self.begin_frame()?;
        }
        if !self.ended {
            self.end_frame()?;
        }
        Ok((self.out, self.frames))
    }
}

impl<W: Write> Write for FramedEncoder<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        if self.in_frame == 0 {
            self.begin_frame()?;
        }
        let room = self.frame_size.map_or(data.len() as u64, |size| size - self.in_frame);
        let part = &data[..data.len().min(usize::try_from(room).unwrap_or(usize::MAX))];
        let mut input = InBuffer::around(part);
        while input.pos < part.len() {
            self.raw.run(&mut input, &mut OutBuffer::around(&mut self.buf))?;
            self.drain()?;
        }
        self.in_frame += part.len() as u64;
        self.plain += part.len() as u64;
        if self.frame_size == Some(self.in_frame) {
            self.end_frame()?;
        }
        Ok(part.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The frame to start decompressing at to read from `plain` on.
pub(crate) fn frame_for(frames: &[Frame], plain: u64) -> Frame {
    let after = frames.partition_point(|f| f.plain <= plain);
    after.checked_sub(1).map_or(Frame { plain: 0, compressed: 0 }, |i| frames[i])
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn text(len: usize) -> Vec<u8> {
        (0..len).map(|i| b"abcdefgh\n"[(i * 7 + i / 13) % 9]).collect()
    }

    fn compress(data: &[u8], frame_size: Option<u64>, workers: u32, piece: usize) -> (Vec<u8>, Vec<Frame>) {
        let mut encoder = FramedEncoder::new(Vec::new(), 3, workers, frame_size).unwrap();
        for part in data.chunks(piece) {
            encoder.write_all(part).unwrap();
        }
        encoder.finish().unwrap()
    }

    #[test]
    fn every_frame_decompresses_on_its_own_to_its_part_of_the_input() {
        let data = text(1_000_000);
        for (workers, piece) in [(0, 4096), (0, 300_001), (2, 65_536)] {
            let (out, frames) = compress(&data, Some(100_000), workers, piece);
            assert_eq!(frames.len(), 10, "workers {workers}, pieces of {piece}");
            assert_eq!(zstd::decode_all(&out[..]).unwrap(), data, "the whole stream reads back");
            for (i, frame) in frames.iter().enumerate() {
                assert_eq!(frame.plain, i as u64 * 100_000);
                let mut decoder = zstd::stream::read::Decoder::new(&out[frame.compressed as usize..]).unwrap();
                let mut first = vec![0; 100_000];
                decoder.read_exact(&mut first).unwrap();
                assert_eq!(first, data[frame.plain as usize..][..100_000]);
            }
            assert_eq!(frame_for(&frames, 250_000), frames[2]);
            assert_eq!(frame_for(&frames, 300_000), frames[3]);
        }
    }

    #[test]
    fn without_a_frame_size_or_input_it_is_a_plain_zstd_stream() {
        let data = text(300_000);
        let (out, frames) = compress(&data, None, 0, 10_000);
        assert_eq!(frames, vec![Frame { plain: 0, compressed: 0 }]);
        assert_eq!(zstd::decode_all(&out[..]).unwrap(), data);

        let (empty, frames) = compress(&[], Some(10), 0, 1);
        assert_eq!(frames.len(), 1);
        assert_eq!(zstd::decode_all(&empty[..]).unwrap(), b"");
    }
}
