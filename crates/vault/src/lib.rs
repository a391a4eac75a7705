//! The credential vault: AES-256-GCM sealing of secrets before they reach the store.
//!
//! A sealed value is text: `cf1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`. The
//! version prefix lets the format change later; the key id (a fingerprint of the key, not
//! the key) says which key sealed it, so a missing key is named precisely and `keys rotate`
//! can tell what is left to re-seal. Every seal takes associated data, the identity of the
//! row that owns the secret: a ciphertext copied into another row does not open.
//!
//! This crate does no IO beyond reading and writing the embedded key file, and never logs.

mod key;

use aes_gcm::aead::{Aead, Generate, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;
use zeroize::Zeroizing;

pub use key::{Key, KeyError, KeyId, generate_key_file, read_key_file};
pub use secrecy::{ExposeSecret, SecretString as Secret};

const PREFIX: &str = "cf1";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Why a sealed value could not be opened or made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    #[error("the sealed value is not in a format this version understands")]
    Malformed,
    #[error(
        "the value was sealed with key {key_id}, which is not configured; set it as INTEGRATION_ENCRYPTION_KEY or add it to INTEGRATION_ENCRYPTION_PREVIOUS_KEYS"
    )]
    UnknownKey { key_id: String },
    #[error("the value does not open with key {key_id}: it was altered, or belongs to another record")]
    Tampered { key_id: String },
    #[error("encryption failed")]
    Encrypt,
    #[error("the opened value is not valid UTF-8")]
    NotUtf8,
}

/// The current key, which seals, and older keys, which only open.
pub struct KeyRing {
    current: Key,
    previous: Vec<Key>,
}

impl KeyRing {
    pub fn new(current: Key, previous: Vec<Key>) -> Self {
        // A previous key equal to the current one adds nothing.
        let previous = previous.into_iter().filter(|k| k.id() != current.id()).collect();
        Self { current, previous }
    }

    pub fn current_id(&self) -> &KeyId {
        self.current.id()
    }

    /// Whether `id` names a key of this ring.
    pub fn has_key(&self, id: &str) -> bool {
        self.key(id).is_some()
    }

    fn key(&self, id: &str) -> Option<&Key> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id().as_str() == id)
    }

    /// Seals `plaintext` under the current key, bound to `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<String, VaultError> {
        let cipher = Aes256Gcm::new(self.current.bytes().into());
        let nonce = Nonce::generate();
        let ct = cipher
            .encrypt(&nonce, Payload { msg: plaintext, aad })
            .map_err(|_| VaultError::Encrypt)?;
        let mut blob = Vec::with_capacity(NONCE_LEN + ct.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ct);
        Ok(format!(
            "{PREFIX}:{}:{}",
            self.current.id(),
            URL_SAFE_NO_PAD.encode(blob)
        ))
    }

    /// Opens a sealed value bound to `aad`, with whichever key of the ring sealed it.
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let (key_id, blob) = parse(sealed)?;
        let key = self.key(key_id).ok_or_else(|| VaultError::UnknownKey {
            key_id: key_id.to_owned(),
        })?;
        let cipher = Aes256Gcm::new(key.bytes().into());
        let (nonce, ct) = blob.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| VaultError::Malformed)?;
        cipher
            .decrypt(&nonce, Payload { msg: ct, aad })
            .map(Zeroizing::new)
            .map_err(|_| VaultError::Tampered {
                key_id: key_id.to_owned(),
            })
    }

    /// Opens a sealed UTF-8 secret.
    pub fn open_string(&self, sealed: &str, aad: &[u8]) -> Result<SecretString, VaultError> {
        let bytes = self.open(sealed, aad)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| VaultError::NotUtf8)?;
        Ok(SecretString::from(text.to_owned()))
    }

    /// Re-seals under the current key; `None` when it already is.
    pub fn reseal(&self, sealed: &str, aad: &[u8]) -> Result<Option<String>, VaultError> {
        if sealed_key_id(sealed)? == self.current.id().as_str() {
            return Ok(None);
        }
        let plain = self.open(sealed, aad)?;
        self.seal(&plain, aad).map(Some)
    }
}

/// The id of the key that sealed a value.
pub fn sealed_key_id(sealed: &str) -> Result<&str, VaultError> {
    parse(sealed).map(|(id, _)| id)
}

fn parse(sealed: &str) -> Result<(&str, Vec<u8>), VaultError> {
    let mut parts = sealed.splitn(3, ':');
    let (Some(PREFIX), Some(key_id), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(VaultError::Malformed);
    };
    let blob = URL_SAFE_NO_PAD.decode(body).map_err(|_| VaultError::Malformed)?;
    if blob.len() < NONCE_LEN + TAG_LEN {
        return Err(VaultError::Malformed);
    }
    Ok((key_id, blob))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> (KeyRing, Key) {
        let k = Key::generate();
        let copy = Key::parse(k.encode().expose_secret()).unwrap();
        (KeyRing::new(k, vec![]), copy)
    }

    #[test]
    fn seal_open_round_trip_with_fresh_nonces() {
        let (ring, _) = ring();
        let a = ring.seal(b"s3cret", b"connection:1:auth").unwrap();
        let b = ring.seal(b"s3cret", b"connection:1:auth").unwrap();
        assert_ne!(a, b, "every seal uses a new nonce");
        assert!(a.starts_with(&format!("cf1:{}:", ring.current_id())));
        assert!(!a.contains("s3cret"));
        assert_eq!(&*ring.open(&a, b"connection:1:auth").unwrap(), b"s3cret");
    }

    #[test]
    fn a_value_moved_to_another_row_does_not_open() {
        let (ring, _) = ring();
        let a = ring.seal(b"s3cret", b"connection:1:auth").unwrap();
        assert!(matches!(
            ring.open(&a, b"connection:2:auth"),
            Err(VaultError::Tampered { .. })
        ));
    }

    #[test]
    fn tampering_is_detected() {
        let (ring, _) = ring();
        let a = ring.seal(b"s3cret", b"row").unwrap();
        let (head, body) = a.rsplit_once(':').unwrap();
        let mut blob = URL_SAFE_NO_PAD.decode(body).unwrap();
        for i in [0, NONCE_LEN, blob.len() - 1] {
            blob[i] ^= 1;
            let forged = format!("{head}:{}", URL_SAFE_NO_PAD.encode(&blob));
            assert!(
                matches!(ring.open(&forged, b"row"), Err(VaultError::Tampered { .. })),
                "byte {i}"
            );
            blob[i] ^= 1;
        }
        for bad in ["", "cf1", "cf1:x", "cf2:abc:AAAA", "cf1:abc:!!!", "cf1:abc:AAAA"] {
            assert!(ring.open(bad, b"row").is_err(), "{bad}");
        }
    }

    #[test]
    fn wrong_key_is_named_not_guessed() {
        let (ring, _) = ring();
        let other = KeyRing::new(Key::generate(), vec![]);
        let a = ring.seal(b"x", b"row").unwrap();
        assert_eq!(
            other.open(&a, b"row"),
            Err(VaultError::UnknownKey {
                key_id: ring.current_id().to_string()
            })
        );
    }

    #[test]
    fn previous_keys_open_and_reseal_moves_to_current() {
        let (old, old_copy) = ring();
        let sealed = old.seal(b"x", b"row").unwrap();
        let new = KeyRing::new(Key::generate(), vec![old_copy]);
        assert_eq!(&*new.open(&sealed, b"row").unwrap(), b"x");
        let moved = new.reseal(&sealed, b"row").unwrap().unwrap();
        assert_eq!(sealed_key_id(&moved).unwrap(), new.current_id().as_str());
        assert_eq!(new.reseal(&moved, b"row").unwrap(), None);
        assert_eq!(&*new.open(&moved, b"row").unwrap(), b"x");
        // the old key alone can no longer read it
        assert!(old.open(&moved, b"row").is_err());
    }
}
