//! Email: messages are written to the tenant outbox and delivered by a job through SMTP
//! (lettre). Without SMTP configured (the development default) delivery marks them
//! `captured` instead, and the "Sent mail" page shows every message with its status, so
//! nothing silently disappears either way.

pub mod handlers;
pub mod message;
pub mod repo;
pub mod transport;
