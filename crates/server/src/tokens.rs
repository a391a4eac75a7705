//! Personal API tokens and passwords. Tokens are 256 random bits shown once; the store keeps
//! only their SHA-256 (a fast hash is right for high-entropy tokens). Passwords, chosen by
//! people, are hashed with Argon2id.

use argon2::password_hash::PasswordHasher;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

pub const TOKEN_PREFIX: &str = "cft_";

/// A fresh token: `cft_` and 43 base64url characters.
pub fn generate() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// What the store keeps of a token.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// An Argon2id PHC string for a password.
pub fn hash_password(password: &str) -> Result<String, String> {
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches an Argon2id PHC string (false for a malformed one).
pub fn verify_password(password: &str, phc: &str) -> bool {
    use argon2::password_hash::PasswordVerifier;
    argon2::password_hash::phc::PasswordHash::new(phc).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == 47, "{a}");
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), hash(&b));
        assert!(!hash(&a).contains(&a[4..]));
    }

    #[test]
    fn passwords_are_salted() {
        let (x, y) = (
            hash_password("correct horse").unwrap(),
            hash_password("correct horse").unwrap(),
        );
        assert!(x.starts_with("$argon2id$"));
        assert_ne!(x, y);
        assert!(verify_password("correct horse", &x) && verify_password("correct horse", &y));
        assert!(!verify_password("correct horse!", &x));
        assert!(!verify_password("correct horse", "not a hash"));
    }
}
