//! SIP: parsing (`parse`, `uri`), editing (`edit`), proxy behaviour (`proxy`) and sockets
//! (`transport`).

pub mod edit;
pub mod parse;
pub mod proxy;
pub mod transport;
pub mod uri;
