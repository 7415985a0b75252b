//! The operator's side: the HTTP API (checks, opt-outs, consent, emergency closures, reloads,
//! audit export, `/metrics`) over the running `app::App`.

pub(crate) mod changes;
mod console;
pub mod http;
pub mod listener;
mod records;
