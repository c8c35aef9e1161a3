//! A multipart upload whose parts are as small as the backup allows. Every part
//! is held in memory until the store has it, so the part size sets most of a
//! backup's footprint: (parts in flight + the one being filled) × part size. S3
//! takes at most 10,000 parts, though, so a fixed small part caps the backup's
//! size (5 MiB parts: 48 GiB). Here parts start at the smallest size that fits the
//! engine's estimate of the backup into [`PLANNED_PARTS`], and grow with what has
//! been uploaded once the estimate is passed (or when there is none).

use bytes::Bytes;
use object_store::{MultipartUpload, PutPayloadMut, PutResult};
use tokio::task::JoinSet;

/// Parts an estimated backup is planned in; the rest of S3's 10,000 are headroom
/// for a backup that turns out larger than estimated.
const PLANNED_PARTS: u64 = 8_000;
/// Past the estimate, a part is at least this share of what was uploaded before it.
/// Without an estimate, 10,000 parts then hold about 40 TiB (flat 5 MiB parts for
/// the first 5 GiB, then growing by 0.1 % a part); a backup 7 times its estimate
/// still fits.
const GROWTH_DIVISOR: u64 = 1_000;
/// S3's limits on a part (but the last).
const MIN_PART: usize = 5 << 20;
const MAX_PART: usize = 5 << 30;

/// The size of the next part: at least `smallest`, enough to fit `estimate` into
/// [`PLANNED_PARTS`], and growing with `uploaded` past the estimate; rounded up to
/// whole MiB.
pub(crate) fn part_size(smallest: usize, estimate: Option<u64>, uploaded: u64) -> usize {
    let by_estimate = estimate.map_or(0, |e| e.div_ceil(PLANNED_PARTS));
    let by_growth = if uploaded >= estimate.unwrap_or(0) { uploaded / GROWTH_DIVISOR } else { 0 };
    let bytes = by_estimate.max(by_growth).max(smallest.max(MIN_PART) as u64);
    usize::try_from(bytes.div_ceil(1 << 20) << 20).unwrap_or(MAX_PART).min(MAX_PART)
}

pub(crate) struct GrowingUpload {
    upload: Box<dyn MultipartUpload>,
    part: PutPayloadMut,
    in_flight: JoinSet<object_store::Result<()>>,
    concurrency: usize,
    smallest: usize,
    estimate: Option<u64>,
    uploaded: u64,
    part_size: usize,
}

impl GrowingUpload {
    pub(crate) fn new(
        upload: Box<dyn MultipartUpload>,
        smallest: usize,
        estimate: Option<u64>,
        concurrency: usize,
    ) -> Self {
        Self {
            upload,
            part: PutPayloadMut::new(),
            in_flight: JoinSet::new(),
            concurrency: concurrency.max(1),
            smallest,
            estimate,
            uploaded: 0,
            part_size: part_size(smallest, estimate, 0),
        }
    }

    /// Adds `chunk` to the part being filled, sending the part once it is full;
    /// waits while as many parts as allowed are on their way.
    pub(crate) async fn put(&mut self, chunk: Bytes) -> object_store::Result<()> {
        self.part.push(chunk);
        if self.part.content_length() >= self.part_size {
            while self.in_flight.len() >= self.concurrency {
                self.wait_one().await?;
            }
            self.send_part();
        }
        Ok(())
    }

    /// Sends the last part, waits for every part and completes the upload.
    pub(crate) async fn finish(mut self) -> object_store::Result<PutResult> {
        if !self.part.is_empty() || self.uploaded == 0 {
            self.send_part();
        }
        while !self.in_flight.is_empty() {
            self.wait_one().await?;
        }
        self.upload.complete().await
    }

    /// Stops the parts on their way and removes what was uploaded.
    pub(crate) async fn abort(mut self) -> object_store::Result<()> {
        self.in_flight.abort_all();
        while self.in_flight.join_next().await.is_some() {}
        self.upload.abort().await
    }

    fn send_part(&mut self) {
        let part = std::mem::take(&mut self.part).freeze();
        self.uploaded += part.content_length() as u64;
        self.in_flight.spawn(self.upload.put_part(part));
        self.part_size = part_size(self.smallest, self.estimate, self.uploaded);
    }

    async fn wait_one(&mut self) -> object_store::Result<()> {
        match self.in_flight.join_next().await {
            Some(Ok(sent)) => sent,
            Some(Err(panicked)) => Err(object_store::Error::Generic { store: "upload", source: Box::new(panicked) }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn small_backups_use_the_smallest_parts() {
        assert_eq!(part_size(5 << 20, Some(300 * MIB), 0), 5 << 20);
        assert_eq!(part_size(5 << 20, None, 0), 5 << 20);
        // Below S3's minimum is not allowed, whatever is configured.
        assert_eq!(part_size(1 << 20, None, 0), 5 << 20);
    }

    #[test]
    fn an_estimate_spreads_the_backup_over_the_planned_parts() {
        // 100 GiB in 8,000 parts: 12.8 MiB, rounded up to 13 MiB, until the end.
        assert_eq!(part_size(5 << 20, Some(100 << 30), 0), 13 << 20);
        assert_eq!(part_size(5 << 20, Some(100 << 30), 99 << 30), 13 << 20);
    }

    #[test]
    fn parts_grow_so_that_no_backup_needs_more_than_ten_thousand() {
        // Without an estimate: the 10,000th part starts beyond a terabyte.
        let (mut uploaded, mut parts) = (0u64, 0);
        while parts < 9_999 {
            uploaded += part_size(5 << 20, None, uploaded) as u64;
            parts += 1;
        }
        assert!(uploaded > 1 << 40, "10,000 parts hold only {} GiB", uploaded >> 30);
        // With a short estimate (a seventh of the real size), growth takes over.
        let (mut uploaded, mut parts) = (0u64, 0);
        while uploaded < 350 << 30 {
            uploaded += part_size(5 << 20, Some(50 << 30), uploaded) as u64;
            parts += 1;
        }
        assert!(parts < 10_000, "{parts} parts for 350 GiB estimated as 50 GiB");
    }
}
