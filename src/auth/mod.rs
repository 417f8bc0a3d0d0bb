//! Users, passwords and sessions.
//!
//! Rules: a user is global (one email, one password) and belongs to tenants through
//! memberships with a role. Passwords are argon2id, hashed and verified on the blocking pool;
//! an unknown email still costs one verification so timing does not reveal which emails exist,
//! and every failure says the same thing. Sessions are server-side rows keyed by the SHA-256 of
//! a random cookie token; a new session is issued at every sign-in and revoked at sign-out.

pub mod account;
pub mod domain;
pub mod extract;
pub mod handlers;
pub mod mfa;
pub mod password;
pub mod permissions;
pub mod repo;
pub mod reset;
pub mod session;
pub mod totp;

pub use domain::{Email, Role};
pub use extract::CurrentUser;

/// Adds the signed-in user (if any) to a layout.
pub trait MaybeUserExt {
    fn maybe_user(self, user: &extract::MaybeUser) -> Self;
}

impl MaybeUserExt for crate::web::layout::Layout {
    fn maybe_user(self, user: &extract::MaybeUser) -> Self {
        match &user.0 {
            Some(u) => self.with_user(&u.name, &u.email),
            None => self,
        }
    }
}
