//! The client transports. Each checks its transport's rules and turns the bytes into one
//! [`crate::request::Request`] for the pipeline; nothing here decides what a request does.

pub mod door;
pub mod hop;
pub mod http;
pub mod legacy;
pub mod modern;
