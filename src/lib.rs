//! callgate: a SIP proxy that enforces US telemarketing rules on every outbound INVITE.
//!
//! The pipeline, one module per stage: `sip` (transport, parse, proxy logic) → `policy`
//! (normalize the called number, classify the call, place and time it, decide against the
//! lists and the rules) → `audit` (decision records) and `admin` (HTTP API, metrics). `lists`
//! owns the number sets; `journal` the append-only record files; `server` wires it together.

pub mod admin;
pub mod audit;
pub mod clock;
pub mod config;
pub mod fuzzing;
pub mod journal;
pub mod lists;
pub mod policy;
pub mod server;
pub mod sip;
pub mod tls;
