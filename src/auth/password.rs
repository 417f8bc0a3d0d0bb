//! argon2id hashing on the blocking pool (it is deliberately slow).

use std::sync::OnceLock;

use argon2::{password_hash::phc::PasswordHash, Argon2, PasswordHasher, PasswordVerifier};

use crate::error::{AppError, AppResult};

pub fn hash_blocking(password: &str) -> AppResult<String> {
    let hash: PasswordHash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| AppError::internal(anyhow::anyhow!("hashing password: {e}")))?;
    Ok(hash.to_string())
}

/// A hash of a random password, verified against when the email is unknown so that the
/// response time does not reveal whether an account exists.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_blocking(&crate::web::csrf::random_token()).unwrap_or_else(|_| {
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
             Zk2Wr7JeWmzJmR0BqcJq5g3jOwcTgQmR6f2c1xq8h0U"
                .to_owned()
        })
    })
}

/// True when `password` matches `stored`; `None` burns the same time and returns false.
pub fn verify_blocking(password: &str, stored: Option<&str>) -> bool {
    let phc: &str = match stored {
        Some(s) => s,
        None => dummy_hash(),
    };
    let Ok(parsed) = phc.parse::<PasswordHash>() else {
        return false;
    };
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    ok && stored.is_some()
}

pub async fn hash(password: String) -> AppResult<String> {
    actix_web::web::block(move || hash_blocking(&password)).await?
}

pub async fn verify(password: String, stored: Option<String>) -> AppResult<bool> {
    Ok(actix_web::web::block(move || verify_blocking(&password, stored.as_deref())).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_blocking("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_blocking("correct horse battery", Some(&h)));
        assert!(!verify_blocking("wrong horse battery", Some(&h)));
        assert!(!verify_blocking("correct horse battery", None));
        assert!(!verify_blocking("x", Some("not a hash")));
    }
}
