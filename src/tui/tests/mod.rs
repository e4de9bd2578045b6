//! The dashboard tested as text: views rendered into ratatui's `TestBackend` from a fixed
//! subscription stream, and every key of the key map followed to the request it sends.

mod fixture;
mod requests;
mod views;
