//! The credential vault (DESIGN §7; issue 19): every secret the service stores is sealed here
//! before it reaches the database, and opened only where it is used.
//!
//! Envelope encryption with AES-256-GCM: each secret gets its own random data key; the data key
//! encrypts the secret, and a key-encryption key from configuration wraps the data key. Both
//! encryptions take a random 96-bit nonce and bind the secret's place (organization, table, row,
//! column) as associated data, so a sealed value copied to another row or organization does not
//! open. The envelope names its key-encryption key, so rotation re-wraps only the data key and an
//! envelope of a key no longer configured fails closed, naming that key.
//!
//! Keys come from configuration (`TENANTRY_VAULT_KEYS`, or a file), never the database, the API
//! or logs: `id:base64` entries, the first the primary (the one new secrets are sealed with).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use rand::RngCore;
use uuid::Uuid;
use zeroize::Zeroizing;

/// The envelope's format version (its first byte).
const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    #[error("vault keys: {0}")]
    Config(String),
    /// The envelope's key is not configured: retired too early, or never this installation's.
    #[error(
        "the secret is sealed with vault key {0:?}, which is not configured (add it back to \
         TENANTRY_VAULT_KEYS to open it, or enter the secret again)"
    )]
    UnknownKey(String),
    /// Not an envelope of this vault, or one moved from another place, or altered.
    #[error("the sealed value does not open here: it was altered or belongs to another place")]
    Tampered,
}

/// Where a secret lives; bound to its envelope as associated data.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub org: Uuid,
    pub table: &'a str,
    pub row: Uuid,
    pub column: &'a str,
}

impl Place<'_> {
    fn associated_data(&self, key_id: &str) -> Vec<u8> {
        format!(
            "tenantry-vault/v{VERSION}|{key_id}|{}|{}|{}|{}",
            self.org, self.table, self.row, self.column
        )
        .into_bytes()
    }
}

struct Kek {
    id: String,
    cipher: Aes256Gcm,
}

/// The configured key-encryption keys; the first is the primary.
pub struct Vault {
    keys: Vec<Kek>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key ids only: the keys never reach a log.
        f.debug_struct("Vault")
            .field("keys", &self.key_ids())
            .finish()
    }
}

impl Vault {
    /// Reads `id:base64key` entries separated by commas or newlines (the first is the primary;
    /// `#` starts a comment line). Ids are 1 to 64 letters, digits, `-` or `_`; keys 32 bytes.
    pub fn from_spec(spec: &str) -> Result<Self, VaultError> {
        let mut keys: Vec<Kek> = Vec::new();
        for entry in spec
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .flat_map(|line| line.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let (id, encoded) = entry
                .split_once(':')
                .ok_or_else(|| VaultError::Config("each key is id:base64".into()))?;
            let id = id.trim();
            let valid_id = (1..=64).contains(&id.len())
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid_id {
                return Err(VaultError::Config(format!(
                    "key id {id:?}: 1 to 64 letters, digits, - or _"
                )));
            }
            let bytes = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .map_err(|_| VaultError::Config(format!("key {id}: not base64")))?,
            );
            if bytes.len() != KEY_LEN {
                return Err(VaultError::Config(format!(
                    "key {id}: {} bytes, not {KEY_LEN}",
                    bytes.len()
                )));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(VaultError::Config(format!("key id {id} appears twice")));
            }
            let cipher = Aes256Gcm::new_from_slice(&bytes)
                .map_err(|_| VaultError::Config(format!("key {id}: not a 256-bit key")))?;
            keys.push(Kek {
                id: id.to_string(),
                cipher,
            });
        }
        if keys.is_empty() {
            return Err(VaultError::Config("no key is configured".into()));
        }
        Ok(Self { keys })
    }

    /// A new random key entry `id:base64` (for `tenantry vault new-key` and the managed default).
    pub fn new_key_entry(id: &str) -> String {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        format!(
            "{id}:{}",
            base64::engine::general_purpose::STANDARD.encode(key.as_ref())
        )
    }

    pub fn primary_key_id(&self) -> &str {
        &self.keys[0].id
    }

    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    fn key(&self, id: &str) -> Result<&Kek, VaultError> {
        self.keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| VaultError::UnknownKey(id.to_string()))
    }

    /// Seals `secret` for `place` under the primary key.
    pub fn seal(&self, place: &Place, secret: &[u8]) -> Vec<u8> {
        let kek = &self.keys[0];
        let mut data_key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(data_key.as_mut());
        let data_cipher = Aes256Gcm::new(data_key.as_ref().into());
        let aad = place.associated_data(&kek.id);
        let (data_nonce, sealed_secret) = encrypt(&data_cipher, secret, &aad);
        let (wrap_nonce, wrapped_key) = encrypt(&kek.cipher, data_key.as_ref(), &aad);
        let mut out = Vec::with_capacity(
            2 + kek.id.len() + 2 * NONCE_LEN + KEY_LEN + 2 * TAG_LEN + secret.len(),
        );
        out.push(VERSION);
        out.push(kek.id.len() as u8);
        out.extend_from_slice(kek.id.as_bytes());
        out.extend_from_slice(&wrap_nonce);
        out.extend_from_slice(&wrapped_key);
        out.extend_from_slice(&data_nonce);
        out.extend_from_slice(&sealed_secret);
        out
    }

    /// Opens an envelope sealed for `place`.
    pub fn open(&self, place: &Place, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let envelope = Envelope::parse(sealed)?;
        let kek = self.key(envelope.key_id)?;
        let aad = place.associated_data(envelope.key_id);
        let data_key = Zeroizing::new(decrypt(
            &kek.cipher,
            envelope.wrap_nonce,
            envelope.wrapped_key,
            &aad,
        )?);
        let data_cipher = Aes256Gcm::new_from_slice(&data_key).map_err(|_| VaultError::Tampered)?;
        Ok(Zeroizing::new(decrypt(
            &data_cipher,
            envelope.data_nonce,
            envelope.sealed_secret,
            &aad,
        )?))
    }

    /// The envelope re-sealed under the primary key, or `None` when it already is. The secret
    /// is re-encrypted too (its associated data names the key), with fresh nonces.
    pub fn rewrap(&self, place: &Place, sealed: &[u8]) -> Result<Option<Vec<u8>>, VaultError> {
        if Envelope::parse(sealed)?.key_id == self.primary_key_id() {
            return Ok(None);
        }
        let secret = self.open(place, sealed)?;
        Ok(Some(self.seal(place, &secret)))
    }

    /// The id of the key an envelope is sealed with.
    pub fn key_id_of(sealed: &[u8]) -> Result<&str, VaultError> {
        Ok(Envelope::parse(sealed)?.key_id)
    }
}

fn encrypt(cipher: &Aes256Gcm, msg: &[u8], aad: &[u8]) -> ([u8; NONCE_LEN], Vec<u8>) {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    // Encrypting into a Vec fails only for lengths beyond GCM's 64 GiB bound.
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg, aad })
        .unwrap_or_default();
    (nonce, sealed)
}

fn decrypt(
    cipher: &Aes256Gcm,
    nonce: &[u8],
    msg: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, VaultError> {
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg, aad })
        .map_err(|_| VaultError::Tampered)
}

/// The parts of an envelope: version, key id, wrap nonce, wrapped data key, data nonce, secret.
struct Envelope<'a> {
    key_id: &'a str,
    wrap_nonce: &'a [u8],
    wrapped_key: &'a [u8],
    data_nonce: &'a [u8],
    sealed_secret: &'a [u8],
}

impl<'a> Envelope<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, VaultError> {
        let (&version, rest) = bytes.split_first().ok_or(VaultError::Tampered)?;
        let (&id_len, rest) = rest.split_first().ok_or(VaultError::Tampered)?;
        if version != VERSION {
            return Err(VaultError::Tampered);
        }
        let id_len = usize::from(id_len);
        let fixed = NONCE_LEN + KEY_LEN + TAG_LEN + NONCE_LEN + TAG_LEN;
        if rest.len() < id_len + fixed {
            return Err(VaultError::Tampered);
        }
        let (id, rest) = rest.split_at(id_len);
        let key_id = std::str::from_utf8(id).map_err(|_| VaultError::Tampered)?;
        let (wrap_nonce, rest) = rest.split_at(NONCE_LEN);
        let (wrapped_key, rest) = rest.split_at(KEY_LEN + TAG_LEN);
        let (data_nonce, sealed_secret) = rest.split_at(NONCE_LEN);
        Ok(Self {
            key_id,
            wrap_nonce,
            wrapped_key,
            data_nonce,
            sealed_secret,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(org: Uuid, row: Uuid) -> Place<'static> {
        Place {
            org,
            table: "integrations",
            row,
            column: "credentials",
        }
    }

    #[test]
    fn a_secret_opens_only_in_its_place_and_under_a_configured_key() {
        let old = Vault::new_key_entry("k1");
        let vault = Vault::from_spec(&old).expect("vault");
        let (org, row) = (Uuid::now_v7(), Uuid::now_v7());
        let here = place(org, row);
        let sealed = vault.seal(&here, b"rk_live_secret");
        assert_eq!(
            vault.open(&here, &sealed).expect("opens").as_slice(),
            b"rk_live_secret"
        );
        // Two seals of one secret differ (fresh data key and nonces).
        assert_ne!(vault.seal(&here, b"rk_live_secret"), sealed);
        assert!(
            !sealed.windows(6).any(|w| w == b"rk_liv"),
            "not in the clear"
        );
        // Another row, organization, table or column: does not open.
        for elsewhere in [
            place(org, Uuid::now_v7()),
            place(Uuid::now_v7(), row),
            Place {
                table: "webhooks",
                ..here
            },
            Place {
                column: "refresh_token",
                ..here
            },
        ] {
            assert_eq!(
                vault.open(&elsewhere, &sealed).err(),
                Some(VaultError::Tampered)
            );
        }
        // Any flipped byte: does not open.
        for i in 0..sealed.len() {
            let mut altered = sealed.clone();
            altered[i] ^= 1;
            assert!(vault.open(&here, &altered).is_err(), "byte {i}");
        }
        assert!(vault.open(&here, &sealed[..sealed.len() - 1]).is_err());
        assert!(vault.open(&here, b"").is_err());

        // Rotation: a new primary re-wraps; the old key can then go.
        let new = Vault::new_key_entry("k2");
        let both = Vault::from_spec(&format!("{new},{old}")).expect("both");
        assert_eq!(both.primary_key_id(), "k2");
        let rewrapped = both
            .rewrap(&here, &sealed)
            .expect("rewrap")
            .expect("changed");
        assert_eq!(Vault::key_id_of(&rewrapped), Ok("k2"));
        assert_eq!(both.rewrap(&here, &rewrapped), Ok(None), "already under k2");
        let only_new = Vault::from_spec(&new).expect("new only");
        assert_eq!(
            only_new.open(&here, &rewrapped).expect("opens").as_slice(),
            b"rk_live_secret"
        );
        // An envelope of the retired key fails closed, naming it.
        let refused = only_new.open(&here, &sealed).expect_err("retired");
        assert_eq!(refused, VaultError::UnknownKey("k1".into()));
        assert!(refused.to_string().contains("\"k1\""));
    }

    #[test]
    fn key_configuration_is_checked_and_never_printed() {
        for bad in [
            "",
            "k1",
            "k1:notbase64!",
            "k1:AAAA",
            "bad id:AAAA",
            "k1:QUFB,k1:QUFB",
        ] {
            assert!(Vault::from_spec(bad).is_err(), "{bad:?}");
        }
        let entry = Vault::new_key_entry("main");
        let vault = Vault::from_spec(&format!("# keys: id:base64, the first primary\n{entry}\n"))
            .expect("vault");
        let key = entry.split_once(':').map(|(_, k)| k).unwrap_or_default();
        assert!(!format!("{vault:?}").contains(key));
        assert_eq!(vault.key_ids(), ["main"]);
    }
}
