//! Chatterfly's HTTP server: configuration, start-up checks, the `/api` routes.
//!
//! Handlers are thin: they authenticate the caller, parse the input into domain types,
//! call the store and the vault, and map the result. Every error becomes an RFC 9457
//! problem document in exactly one place ([`error::ApiError`]). Nothing here opens an
//! outbound connection, and no handler formats a secret into a response or a log line.

pub mod api;
pub mod call_cache;
pub mod config;
pub mod error;
mod extract;
mod listen;
pub mod logging;
pub mod ops;
pub mod startup;
pub mod tokens;
pub mod web;

pub use config::Config;
pub use startup::{App, StartupError, serve};
