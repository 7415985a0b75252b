//! callgate: a SIP proxy that enforces US telemarketing rules on every outbound INVITE.
//!
//! The pipeline, one module per stage (docs/contributors/architecture.md has the map):
//! `sip` (transport, parse, proxy logic; knows nothing of compliance) puts every new call to a
//! `sip::gate::CallGate`; `gate` is the compliance side of that door (number and context from
//! the INVITE, the decision, its record, the rejection); `policy` decides against `lists` and
//! the rules; `audit` chains and writes the records; `admin` serves the HTTP API on top of
//! `app` (the running application); `server` builds and runs it all. `number`, `call`,
//! `metrics`, `clock`, `journal`, `hashing` and `tls` are the shared basics underneath.

pub(crate) mod admin;
pub mod app;
pub mod audit;
pub mod call;
pub mod clock;
pub mod config;
pub mod fuzzing;
pub mod gate;
pub(crate) mod hashing;
pub(crate) mod journal;
pub mod lists;
pub mod metrics;
pub mod number;
pub mod policy;
pub mod records;
pub mod server;
pub mod shared;
pub mod sip;
pub mod tls;
