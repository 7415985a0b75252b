//! The SIP core: parsing (`parse`, `uri`), editing (`edit`), proxy behaviour (`proxy`),
//! sockets (`transport`), its counters (`metrics`) and who is who (`peer`). It knows nothing of
//! compliance: a new call is put to the `gate::CallGate` it is given.

pub(crate) mod edit;
pub mod gate;
pub mod metrics;
pub mod parse;
pub mod peer;
pub mod proxy;
pub(crate) mod transport;
pub mod uri;

/// The most UDP workers (`sip.workers`) one callgate runs.
pub const MAX_WORKERS: usize = 64;
