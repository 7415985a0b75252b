//! callgate: a SIP proxy that checks every outbound INVITE against Do-Not-Call lists.
//!
//! The pipeline, one module per stage: `sip` (transport, parse, proxy logic) → `policy`
//! (normalize the called number, decide) → `audit` (decision records) and `admin` (HTTP API,
//! metrics). `lists` owns the number sets; `server` wires it all together.

pub mod admin;
pub mod audit;
pub mod clock;
pub mod config;
pub mod lists;
pub mod policy;
pub mod server;
pub mod sip;
