//! Password hashing with Argon2id (the `argon2` crate's defaults: 19 MiB, 2 passes, 1 lane, as
//! OWASP recommends), bounded so that no burst of requests can exhaust the machine:
//!
//! - at most one hash per core runs at once, on the blocking pool;
//! - behind them a short queue; a request that finds it full is refused at once (503 with
//!   `Retry-After`) before anything is hashed or written — take a [`Ticket`] first;
//! - each running hash fills a 19 MiB buffer taken from a pool and given back, so memory stays at
//!   one buffer per core instead of one allocation per hash (which the allocator keeps).

use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::kernel::error::{Error, Result};
use crate::kernel::input::Rule;

pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 256;

/// Requests that may wait for a hash, per core, beyond the ones running.
const QUEUE_PER_CORE: usize = 8;

/// A new password: `MIN_LEN` to `MAX_LEN` characters (long passphrases welcome; the cap keeps
/// hashing time bounded).
pub fn new_password(value: &str) -> Rule {
    (MIN_LEN..=MAX_LEN)
        .contains(&value.chars().count())
        .then_some(())
        .ok_or_else(|| format!("must be {MIN_LEN} to {MAX_LEN} characters"))
}

/// The process's hashing capacity: the machine's cores are the resource, so it is one per process.
struct Hasher {
    /// Requests holding a ticket: running or queued.
    admitted: Arc<Semaphore>,
    /// Hashes running.
    running: Arc<Semaphore>,
    /// Argon2 memory, one buffer per running hash, reused.
    memory: Mutex<Vec<Vec<Block>>>,
}

static HASHER: LazyLock<Hasher> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Hasher {
        admitted: Arc::new(Semaphore::new(cores * (1 + QUEUE_PER_CORE))),
        running: Arc::new(Semaphore::new(cores)),
        memory: Mutex::new(Vec::new()),
    }
});

/// A place in the hashing queue. Taken before anything else of a request that will hash, so a
/// full queue refuses the request before it counts against any limit or touches the database.
pub struct Ticket(#[allow(dead_code)] OwnedSemaphorePermit);

impl Ticket {
    /// A place in the queue, or [`Error::Busy`] at once when it is full.
    pub fn take() -> Result<Self> {
        HASHER
            .admitted
            .clone()
            .try_acquire_owned()
            .map(Ticket)
            .map_err(|_| Error::Busy { retry_after: 1 })
    }

    /// An Argon2id PHC string for `password`.
    pub async fn hash(&self, password: String) -> Result<String> {
        run(move |memory| {
            let salt = SaltString::generate(&mut OsRng);
            let params = Params::default();
            let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
            let output = compute(&argon, password.as_bytes(), &salt.as_salt(), 32, memory)?;
            let phc = PasswordHash {
                algorithm: Algorithm::Argon2id.ident(),
                version: Some(Version::V0x13.into()),
                params: ParamsString::try_from(&params).map_err(internal)?,
                salt: Some(salt.as_salt()),
                hash: Some(output),
            };
            Ok(phc.to_string())
        })
        .await?
    }

    /// Whether `password` matches `stored`. Without a stored hash (unknown email) a dummy hash
    /// is verified anyway, so the answer takes as long either way and reveals nothing.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool> {
        static DUMMY: OnceLock<String> = OnceLock::new();
        let known = stored.is_some();
        let stored = match stored {
            Some(hash) => hash,
            None => match DUMMY.get() {
                Some(dummy) => dummy.clone(),
                None => {
                    let dummy = self.hash("not a real password".into()).await?;
                    DUMMY.get_or_init(|| dummy).clone()
                }
            },
        };
        let matches = run(move |memory| {
            let Ok(parsed) = PasswordHash::new(&stored) else {
                return false;
            };
            let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
                return false;
            };
            let argon = (|| {
                let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
                let version = match parsed.version {
                    Some(v) => Version::try_from(v).ok()?,
                    None => Version::default(),
                };
                Some(Argon2::new(
                    algorithm,
                    version,
                    Params::try_from(&parsed).ok()?,
                ))
            })();
            argon
                .and_then(|a| compute(&a, password.as_bytes(), &salt, expected.len(), memory).ok())
                // Output compares in constant time.
                .is_some_and(|computed| computed == expected)
        })
        .await?;
        Ok(known && matches)
    }
}

/// Runs `work` on the blocking pool once a core is free, with a pooled Argon2 buffer. The core
/// and the buffer are released when the work ends, even if the request was dropped meanwhile.
async fn run<T: Send + 'static>(
    work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
) -> Result<T> {
    let core = HASHER
        .running
        .clone()
        .acquire_owned()
        .await
        .map_err(internal)?;
    tokio::task::spawn_blocking(move || {
        let mut memory = lock_memory().pop().unwrap_or_default();
        let result = work(&mut memory);
        lock_memory().push(memory);
        drop(core);
        result
    })
    .await
    .map_err(internal)
}

fn lock_memory() -> std::sync::MutexGuard<'static, Vec<Vec<Block>>> {
    // A panic while holding the lock leaves only a list of buffers behind: still usable.
    HASHER.memory.lock().unwrap_or_else(|e| e.into_inner())
}

/// The raw Argon2 output for `password` and `salt`, in `memory` (grown to the parameters' size).
fn compute(
    argon: &Argon2<'_>,
    password: &[u8],
    salt: &argon2::password_hash::Salt<'_>,
    len: usize,
    memory: &mut Vec<Block>,
) -> Result<Output> {
    let blocks = argon.params().block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut salt_bytes = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_bytes).map_err(internal)?;
    Output::init_with(len, |out| {
        argon
            .hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
            .map_err(|_| argon2::password_hash::Error::Password)
    })
    .map_err(internal)
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("password hashing: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    use argon2::PasswordVerifier;

    #[tokio::test]
    async fn hashes_verify_and_differ_per_salt() {
        let ticket = Ticket::take().expect("ticket");
        let a = ticket.hash("correct horse".into()).await.expect("hash");
        let b = ticket.hash("correct horse".into()).await.expect("hash");
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_ne!(a, b);
        let verify =
            |password: &str, stored: Option<String>| ticket.verify(password.to_string(), stored);
        assert!(verify("correct horse", Some(a.clone()))
            .await
            .expect("verify"));
        assert!(!verify("wrong horse", Some(a.clone()))
            .await
            .expect("verify"));
        assert!(!verify("correct horse", None).await.expect("verify"));
        assert!(!verify("x", Some("not a phc string".into()))
            .await
            .expect("verify"));
        // The same PHC string the argon2 crate's own verifier accepts (hashes stored before
        // the pooled memory keep working, and ours are standard).
        let parsed = PasswordHash::new(&a).expect("parse");
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        let theirs = {
            use argon2::PasswordHasher;
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(b"correct horse", &salt)
                .expect("hash")
                .to_string()
        };
        assert!(verify("correct horse", Some(theirs)).await.expect("verify"));
    }

    #[test]
    fn a_full_queue_refuses_at_once() {
        let mut held = Vec::new();
        loop {
            match Ticket::take() {
                Ok(ticket) => held.push(ticket),
                Err(Error::Busy { retry_after }) => {
                    assert_eq!(retry_after, 1);
                    break;
                }
                Err(e) => panic!("unexpected {e}"),
            }
            assert!(held.len() <= 4096, "the queue has no bound");
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(held.len(), cores * (1 + QUEUE_PER_CORE));
        held.pop();
        assert!(Ticket::take().is_ok(), "a place freed is taken again");
    }

    #[test]
    fn length_rules() {
        assert!(new_password("1234567").is_err());
        assert!(new_password("12345678").is_ok());
        assert!(new_password(&"é".repeat(256)).is_ok());
        assert!(new_password(&"x".repeat(257)).is_err());
    }
}
