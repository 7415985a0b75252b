//! A `Proxy` over the real compliance gate, as the in-memory message-path tests and benchmarks
//! use it: lists written to a temporary directory, the default policy, the audit writer
//! running, dialers from 192.0.2.0/24, and a clock at 19:00 UTC today (inside the test numbers'
//! calling window whenever it runs). Include with `#[path = "support/gate_proxy.rs"] mod
//! gate_proxy;` next to `support/proxy_settings.rs`.

#![allow(dead_code)] // the benchmark reads the lists and normalizer; the tests only the proxy
use crate::proxy_settings;
use callgate::audit::AuditWriter;
use callgate::config::{Config, ListsConfig, RejectConfig};
use callgate::gate::{Compliance, Parts, Rules};
use callgate::lists::ListStore;
use callgate::metrics::Metrics;
use callgate::number::Normalizer;
use callgate::policy::{Policy, PolicyState};
use callgate::sip::metrics::SipMetrics;
use callgate::sip::proxy::{Access, Proxy};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// One list file: its id and kind in the manifest, its lines, and whether the manifest says
/// when it was downloaded (yesterday).
pub struct List<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub numbers: String,
    pub dated: bool,
}

pub struct GateProxy {
    pub proxy: Proxy,
    pub lists: Arc<ListStore>,
    pub normalizer: Normalizer,
    _writer: AuditWriter,
    _dir: tempfile::TempDir,
}

pub fn gate_proxy(lists: &[List], upstream: SocketAddr, upstream_host: &str) -> GateProxy {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let downloaded = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339();
    let mut manifest = String::new();
    for l in lists {
        let file = format!("{}.txt", l.id);
        std::fs::write(data.join(&file), &l.numbers).unwrap();
        manifest += &format!(
            "[[list]]\nid=\"{}\"\nkind=\"{}\"\nfile=\"{file}\"\n",
            l.id, l.kind
        );
        if l.dated {
            manifest += &format!("downloaded=\"{downloaded}\"\n");
        }
    }
    std::fs::write(data.join("lists.toml"), manifest).unwrap();
    let clock: callgate::clock::SharedClock =
        Arc::new(callgate::clock::OffsetClock::today_at_utc_hour(19));
    let cfg = ListsConfig {
        data_dir: data,
        manifest: "lists.toml".into(),
        optout_journal: dir.path().join("optouts.jsonl"),
        ..Default::default()
    };
    let store = Arc::new(ListStore::open(&cfg, clock.clone()).unwrap());
    let metrics = Arc::new(Metrics::new());
    let (writer, sink) = AuditWriter::start(
        &dir.path().join("audit"),
        1 << 20,
        Duration::from_millis(100),
        metrics.clone(),
        false,
        false,
        None,
    )
    .unwrap();
    let settings = proxy_settings::settings(upstream, upstream_host);
    let access = Access {
        dialers: vec!["192.0.2.0/24".parse().unwrap()],
        drain_retry_after_secs: 30,
        ..Access::default()
    };
    let rules = Rules {
        reject: RejectConfig::default(),
        policy: Arc::new(Policy::new(&Config::default()).unwrap()),
        calls: Default::default(),
        telemarketers: Default::default(),
    };
    let normalizer = Normalizer::new(&[], &["911".into()]);
    let sip_metrics = Arc::new(SipMetrics::register(&metrics.registry));
    let gate = Compliance::new(
        Parts {
            normalizer: normalizer.clone(),
            lists: store.clone(),
            state: Arc::new(PolicyState::in_memory()),
            audit: sink,
            metrics,
            clock,
            host: settings.advertise_host.clone(),
            before_forward: false,
            refuse_unrecorded: true,
            caps: None,
        },
        rules,
    );
    GateProxy {
        proxy: Proxy::new(settings, access, gate, sip_metrics),
        lists: store,
        normalizer,
        _writer: writer,
        _dir: dir,
    }
}
