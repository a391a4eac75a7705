//! Encryption keys: parsing `INTEGRATION_ENCRYPTION_KEY`, generating, the embedded key file.

use std::fmt;
use std::io::Write;
use std::path::Path;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Generate, KeyInit};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Why a key was refused. Never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "{name} must be 32 bytes, written as base64 (44 characters) or hex (64 characters); {problem}. `chatterfly keys generate` prints a valid key"
    )]
    Invalid { name: String, problem: String },
    #[error("cannot read the key file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot write the key file {path}: {source}")]
    Write { path: String, source: std::io::Error },
}

/// A key's fingerprint: 16 hex characters of a domain-separated SHA-256 of the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(String);

impl KeyId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A 256-bit AES key; zeroized on drop, never printed.
pub struct Key {
    bytes: Zeroizing<[u8; 32]>,
    id: KeyId,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({} [REDACTED])", self.id)
    }
}

impl Key {
    fn from_bytes(bytes: Zeroizing<[u8; 32]>) -> Self {
        let mut h = Sha256::new();
        h.update(b"chatterfly vault key id v1\0");
        h.update(bytes.as_slice());
        let id = KeyId(hex::encode(&h.finalize()[..8]));
        Self { bytes, id }
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        let k = aes_gcm::Key::<Aes256Gcm>::generate();
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&k);
        Self::from_bytes(bytes)
    }

    /// Parses base64 (standard or URL-safe, padded or not) or 64 hex characters.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        Self::parse_named(text, "INTEGRATION_ENCRYPTION_KEY")
    }

    /// Like [`parse`](Self::parse), naming the setting in errors.
    pub fn parse_named(text: &str, name: &str) -> Result<Self, KeyError> {
        let invalid = |problem: String| KeyError::Invalid {
            name: name.to_owned(),
            problem,
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(invalid("it is empty".into()));
        }
        let decoded: Zeroizing<Vec<u8>> = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            Zeroizing::new(hex::decode(text).map_err(|_| invalid("it is not valid hex".into()))?)
        } else {
            let engines = [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD];
            let found = engines.iter().find_map(|e| e.decode(text).ok());
            Zeroizing::new(found.ok_or_else(|| {
                invalid(format!(
                    "its {} characters are neither 64 hex digits nor base64",
                    text.len()
                ))
            })?)
        };
        if decoded.len() != 32 {
            return Err(invalid(format!("it decodes to {} bytes", decoded.len())));
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&decoded);
        // Reject keys the cipher cannot take (none today; a guard if the cipher changes).
        Aes256Gcm::new_from_slice(bytes.as_slice()).map_err(|_| invalid("the cipher refuses it".into()))?;
        Ok(Self::from_bytes(bytes))
    }

    /// Parses a comma-separated list, as in `INTEGRATION_ENCRYPTION_PREVIOUS_KEYS`.
    pub fn parse_list(text: &str, name: &str) -> Result<Vec<Self>, KeyError> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .enumerate()
            .map(|(i, k)| Self::parse_named(k, &format!("{name} (item {})", i + 1)))
            .collect()
    }

    pub fn id(&self) -> &KeyId {
        &self.id
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// The key as standard base64: for `keys generate` and the key file only.
    pub fn encode(&self) -> SecretString {
        SecretString::from(STANDARD.encode(self.bytes.as_slice()))
    }
}

/// Reads the embedded key file (base64 or hex text).
pub fn read_key_file(path: &Path) -> Result<Key, KeyError> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.display().to_string(),
        source,
    })?);
    Key::parse_named(&text, &format!("the key file {}", path.display()))
}

/// Creates the embedded key file with a fresh key, readable by the owner only (0600).
/// Fails if the file already exists, so a key is never overwritten.
pub fn generate_key_file(path: &Path) -> Result<Key, KeyError> {
    let key = Key::generate();
    let write_err = |source| KeyError::Write {
        path: path.display().to_string(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(write_err)?;
    let encoded = key.encode();
    use secrecy::ExposeSecret;
    f.write_all(encoded.expose_secret().as_bytes()).map_err(write_err)?;
    f.write_all(b"\n").map_err(write_err)?;
    f.sync_all().map_err(write_err)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn parses_base64_and_hex() {
        let k = Key::generate();
        let b64 = k.encode();
        let raw = STANDARD.decode(b64.expose_secret()).unwrap();
        let hexed = hex::encode(&raw);
        let forms = [
            b64.expose_secret().to_owned(),
            STANDARD_NO_PAD.encode(&raw),
            URL_SAFE_NO_PAD.encode(&raw),
            hexed.clone(),
            hexed.to_uppercase(),
            format!("  {}\n", b64.expose_secret()),
        ];
        for form in forms {
            assert_eq!(Key::parse(&form).unwrap().id(), k.id(), "{form}");
        }
    }

    #[test]
    fn refuses_wrong_lengths_without_echoing() {
        for bad in [
            "",
            "abc",
            "c2hvcnQ=",
            &"ab".repeat(31),
            &"zz".repeat(32),
            &STANDARD.encode([7u8; 33]),
        ] {
            let e = Key::parse(bad).unwrap_err().to_string();
            assert!(e.contains("32 bytes"), "{e}");
            if bad.len() > 4 {
                assert!(!e.contains(bad), "{e}");
            }
        }
    }

    #[test]
    fn key_file_is_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("integration.key");
        let k = generate_key_file(&path).unwrap();
        assert_eq!(read_key_file(&path).unwrap().id(), k.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert!(generate_key_file(&path).is_err());
        assert_eq!(read_key_file(&path).unwrap().id(), k.id());
    }

    #[test]
    fn debug_does_not_show_the_key() {
        let k = Key::generate();
        let d = format!("{k:?}");
        assert!(!d.contains(k.encode().expose_secret()));
        assert!(d.contains("REDACTED"));
    }

    #[test]
    fn lists() {
        let (a, b) = (Key::generate(), Key::generate());
        let text = format!("{}, {}", a.encode().expose_secret(), b.encode().expose_secret());
        let keys = Key::parse_list(&text, "PREV").unwrap();
        assert_eq!(keys.len(), 2);
        assert!(Key::parse_list("", "PREV").unwrap().is_empty());
        assert!(
            Key::parse_list("abc", "PREV")
                .unwrap_err()
                .to_string()
                .contains("item 1")
        );
    }
}
