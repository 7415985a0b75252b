//! The operator's side: HTTP API and Prometheus metrics.

pub mod http;
pub mod listener;
pub mod metrics;
