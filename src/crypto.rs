//! Secrets at rest and one-way token digests.
//!
//! Secrets (TOTP seeds, connector credentials) are sealed with AES-256-GCM under a key derived
//! from `ARBOR_SECRET_KEY` per purpose, with a random 96-bit nonce stored in front of the
//! ciphertext. Tokens we hand out (sessions, invitations, resets, recovery codes) are stored as
//! keyed digests only, so a database dump does not yield working tokens.

use aes_gcm::{
    aead::{Aead, KeyInit},
    Aes256Gcm, Key, Nonce,
};
use anyhow::anyhow;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;

use crate::config::SecretKey;

const NONCE_LEN: usize = 12;

pub fn seal(key: &SecretKey, purpose: &str, plaintext: &[u8]) -> anyhow::Result<Vec<u8>> {
    let k = key.derive(&format!("seal:{purpose}"));
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&k));
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(Nonce::from_slice(&nonce), plaintext)
        .map_err(|_| anyhow!("encryption failed"))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Ok(out)
}

pub fn open(key: &SecretKey, purpose: &str, sealed: &[u8]) -> anyhow::Result<Vec<u8>> {
    if sealed.len() <= NONCE_LEN {
        return Err(anyhow!("sealed value too short"));
    }
    let k = key.derive(&format!("seal:{purpose}"));
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&k));
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    cipher
        .decrypt(Nonce::from_slice(nonce), ct)
        .map_err(|_| anyhow!("decryption failed (wrong key or tampered value)"))
}

/// Keyed digest of a token for storage and lookup.
pub fn digest(key: &SecretKey, purpose: &str, token: &str) -> Vec<u8> {
    let Ok(mut mac) =
        <Hmac<Sha256> as Mac>::new_from_slice(&key.derive(&format!("digest:{purpose}")))
    else {
        return Vec::new();
    };
    mac.update(token.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_detects_tampering() {
        let k = SecretKey::development();
        let sealed = seal(&k, "totp", b"JBSWY3DPEHPK3PXP").unwrap();
        assert_eq!(open(&k, "totp", &sealed).unwrap(), b"JBSWY3DPEHPK3PXP");
        assert!(open(&k, "other-purpose", &sealed).is_err());
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(open(&k, "totp", &bad).is_err());
        assert_ne!(
            seal(&k, "totp", b"x").unwrap(),
            seal(&k, "totp", b"x").unwrap(),
            "random nonce"
        );
    }

    #[test]
    fn digests_are_keyed_by_purpose() {
        let k = SecretKey::development();
        assert_eq!(digest(&k, "invite", "t"), digest(&k, "invite", "t"));
        assert_ne!(digest(&k, "invite", "t"), digest(&k, "reset", "t"));
    }
}
