//! Real-browser tests: the app on port 0, Debian Chromium driven over WebDriver, the SMTP sink.
//! One journey walks what a finance team does in a month, through the pages people use.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod driver;
#[allow(dead_code)]
#[path = "../app/helpers.rs"]
mod helpers;
mod journey;
