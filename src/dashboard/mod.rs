//! The tenant dashboard: the first page after sign-in. It shows what needs attention now;
//! each feature adds its own figures here as it lands.

pub mod handlers;
