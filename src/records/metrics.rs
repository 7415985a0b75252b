//! Call-record metrics: calls ended by disposition, how long they took to set up and lasted.

use super::{CallRecord, Disposition};
use crate::metrics::counter_vec;
use prometheus::{Histogram, HistogramOpts, IntCounter, Registry};

pub(crate) struct RecordMetrics {
    by_disposition: Vec<IntCounter>,
    setup_seconds: Histogram,
    duration_seconds: Histogram,
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("metric");
    crate::metrics::register(r, &h, "histogram");
    h
}

impl RecordMetrics {
    pub(crate) fn register(r: &Registry) -> RecordMetrics {
        let calls = counter_vec(
            r,
            "callgate_calls_total",
            "Calls ended and recorded, by disposition.",
            &["disposition"],
        );
        RecordMetrics {
            by_disposition: Disposition::ALL
                .iter()
                .map(|d| calls.with_label_values(&[d.as_str()]))
                .collect(),
            setup_seconds: histogram(
                r,
                "callgate_call_setup_seconds",
                "From the INVITE to the answer (or to the final response of an unanswered call).",
                vec![0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0],
            ),
            duration_seconds: histogram(
                r,
                "callgate_call_duration_seconds",
                "From the answer to the end of answered calls.",
                vec![
                    1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
                ],
            ),
        }
    }

    pub(crate) fn count(&self, r: &CallRecord) {
        let i = Disposition::ALL
            .iter()
            .position(|d| *d == r.disposition())
            .unwrap_or(0);
        self.by_disposition[i].inc();
        if let Some(ms) = r.setup_ms() {
            self.setup_seconds.observe(ms as f64 / 1000.0);
        }
        if let (Some(ms), true) = (r.duration_ms(), r.call.answered_at.is_some()) {
            self.duration_seconds.observe(ms as f64 / 1000.0);
        }
    }
}
