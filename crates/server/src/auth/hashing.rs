//! Checking passwords with a bounded amount of memory. One argon2 check takes
//! ~19 MiB, so only a few run at once (a slot each), each on a thread of its own
//! that keeps its working memory from one check to the next. Allocating it anew
//! for every check does not stay bounded: the allocator keeps freed blocks of
//! this size per thread and, fragmented, rarely reuses them (50 checks two at a
//! time grew the process by ~300 MiB).

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::RngCore;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// Work for a checking thread, given that thread's argon2 memory.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

pub struct PasswordChecks {
    slots: Arc<Semaphore>,
    wait: Duration,
    jobs: mpsc::Sender<Job>,
}

/// No slot freed up in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// The right to check one password.
pub struct Slot<'a> {
    permit: OwnedSemaphorePermit,
    jobs: &'a mpsc::Sender<Job>,
}

impl PasswordChecks {
    /// `slots` checks at once; an attempt waits at most `wait` for one. The
    /// threads end when this is dropped.
    pub fn new(slots: usize, wait: Duration) -> Self {
        let slots = slots.max(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..slots {
            let queue = queue.clone();
            let worker = move || {
                let mut memory = Vec::new();
                loop {
                    // The lock is held only while waiting for the next job.
                    let job = match queue.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                        Ok(job) => job,
                        Err(mpsc::RecvError) => return,
                    };
                    job(&mut memory);
                }
            };
            if let Err(e) = std::thread::Builder::new().name(format!("password-check-{n}")).spawn(worker) {
                // Fewer threads only queue checks longer; the slots still bound them.
                tracing::error!(error = %e, "could not start a password-checking thread");
            }
        }
        Self { slots: Arc::new(Semaphore::new(slots)), wait, jobs }
    }

    /// A slot, or [`Busy`] when none frees up within the wait.
    pub async fn slot(&self) -> Result<Slot<'_>, Busy> {
        match tokio::time::timeout(self.wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Slot { permit, jobs: &self.jobs }),
            Ok(Err(_)) | Err(_) => Err(Busy),
        }
    }

    /// How long [`PasswordChecks::slot`] waits.
    pub fn wait(&self) -> Duration {
        self.wait
    }
}

impl Slot<'_> {
    /// Whether `password` matches `hash` (a PHC string from
    /// [`super::hash_password`]). Without a hash (an unknown user) the same work is
    /// done and the answer is no, so timing does not tell which names exist.
    pub async fn verify(self, password: String, hash: Option<String>) -> anyhow::Result<bool> {
        self.run(move |memory| match hash {
            Some(hash) => verify_in(memory, &password, &hash),
            None => {
                let mut salt = [0u8; 16];
                rand::rng().fill_bytes(&mut salt);
                let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
                let argon2 = Argon2::default();
                grow(memory, argon2.params());
                let _ = argon2.hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, &mut memory[..]);
                false
            }
        })
        .await
    }

    /// Runs `work` on a checking thread. The slot is held until the job is done,
    /// also when the caller stops waiting for it.
    async fn run<T: Send + 'static>(
        self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let (done, answer) = oneshot::channel();
        let permit = self.permit;
        let job: Job = Box::new(move |memory| {
            let _ = done.send(work(memory));
            drop(permit);
        });
        self.jobs.send(job).map_err(|_| anyhow::anyhow!("the password-checking threads have stopped"))?;
        answer.await.map_err(|_| anyhow::anyhow!("a password check was abandoned"))
    }
}

/// `argon2::PasswordVerifier::verify_password`, in the given memory.
fn verify_in(memory: &mut Vec<Block>, password: &str, hash: &str) -> bool {
    let Ok(hash) = PasswordHash::new(hash) else { return false };
    let (Some(expected), Some(salt)) = (hash.hash, hash.salt) else { return false };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else { return false };
    let Ok(version) = hash.version.map_or(Ok(Version::default()), Version::try_from) else { return false };
    let Ok(params) = Params::try_from(&hash) else { return false };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else { return false };
    grow(memory, &params);
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..])
        .is_ok()
        && Output::new(&out).is_ok_and(|computed| computed == expected)
}

/// Memory for `params`, grown once; the blocks' old contents do not matter.
fn grow(memory: &mut Vec<Block>, params: &Params) {
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checks_wait_for_a_free_slot() {
        let checks = PasswordChecks::new(1, Duration::from_millis(50));
        let slot = checks.slot().await.unwrap();
        assert!(checks.slot().await.is_err());
        let thread = slot.run(|_| std::thread::current().name().map(str::to_owned)).await.unwrap();
        assert_eq!(thread.as_deref(), Some("password-check-0"));
        assert!(checks.slot().await.is_ok(), "free again");
    }

    #[tokio::test]
    async fn a_slot_is_held_until_its_check_is_done() {
        let checks = PasswordChecks::new(1, Duration::from_millis(100));
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let slot = checks.slot().await.unwrap();
        // The caller gives up at once; the check goes on.
        let abandoned = slot.run(move |_| wait.recv().ok());
        drop(tokio::time::timeout(Duration::from_millis(10), abandoned).await);
        assert!(checks.slot().await.is_err(), "still checking");
        release.send(()).unwrap();
        assert!(checks.slot().await.is_ok());
    }

    #[tokio::test]
    async fn passwords_are_checked_as_argon2_checks_them_in_memory_kept_between_checks() {
        let checks = PasswordChecks::new(1, Duration::from_secs(60));
        let hash = super::super::hash_password("correct horse battery").unwrap();
        let verify = |password: &str, hash: Option<&str>| {
            let (password, hash) = (password.to_owned(), hash.map(str::to_owned));
            let checks = &checks;
            async move { checks.slot().await.unwrap().verify(password, hash).await.unwrap() }
        };
        for _ in 0..2 {
            assert!(verify("correct horse battery", Some(&hash)).await);
            assert!(!verify("correct horse batter", Some(&hash)).await);
            assert!(!verify("correct horse battery", None).await);
            assert!(!verify("correct horse battery", Some("not a hash")).await);
        }
        // Other parameters than svcdash's own, as argon2 reads them from the hash.
        let params = Params::new(8, 1, 1, Some(16)).unwrap();
        let salt = argon2::password_hash::SaltString::encode_b64(b"sixteen byte salt").unwrap();
        let small = argon2::password_hash::PasswordHasher::hash_password(
            &Argon2::new(Algorithm::Argon2i, Version::V0x10, params),
            b"pw",
            &salt,
        )
        .unwrap()
        .to_string();
        assert!(verify("pw", Some(&small)).await, "{small}");
        assert!(!verify("px", Some(&small)).await);
    }
}
