//! `callgate.toml`: every setting, its default, and errors that name the file, line and key.
//!
//! Relative paths in the file resolve against the current directory (like most daemons run
//! from a service manager with a working directory), so the repository's sample config works
//! when callgate is started from the repository root.

use crate::call::{Audience, CallMethod, CallType, Purpose, Reason};
pub use crate::sip::peer::Transport;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod password;
pub use password::{PasswordHashText, MIN_PASSWORD_CHARS};

/// The repository's `config/callgate.toml`, built in: `callgate run` without `--config` uses it.
pub const EMBEDDED_DEFAULT: &str = include_str!("../config/callgate.toml");

/// `callgate.toml`: every section and key; a key not listed here is an error.
#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub sip: SipConfig,
    pub tls: TlsConfig,
    pub upstream: UpstreamConfig,
    pub dialers: DialersConfig,
    pub numbers: NumbersConfig,
    pub policy: PolicyConfig,
    pub reject: RejectConfig,
    pub lists: ListsConfig,
    pub audit: AuditConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
    pub campaigns: CampaignsConfig,
    pub calls: CallsConfig,
    pub records: RecordsConfig,
    pub shared: SharedConfig,
    #[serde(rename = "campaign")]
    pub campaign: Vec<CampaignConfig>,
    /// Where this configuration came from (file name, text), to locate errors found later.
    #[serde(skip)]
    pub origin: (String, std::sync::Arc<str>),
}

/// How a call finds its campaign: the headers a dialer may set, and the default campaign.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CampaignsConfig {
    /// Header a dialer may set to name the campaign of a call.
    pub campaign_header: String,
    /// Header a dialer may set to name the call type (purpose and/or method), within the
    /// campaign's `allowed_call_types`.
    pub call_type_header: String,
    /// The campaign of calls that name none and come from no campaign's `sources`.
    pub default: String,
}

impl Default for CampaignsConfig {
    fn default() -> Self {
        CampaignsConfig {
            campaign_header: "X-Callgate-Campaign".into(),
            call_type_header: "X-Callgate-Call-Type".into(),
            default: "default".into(),
        }
    }
}

/// A campaign (`[[campaign]]`, repeatable): why and how its calls are placed, whom they reach, and
/// what they may present.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CampaignConfig {
    /// The campaign's name, as dialers give it in `X-Callgate-Campaign`.
    pub id: String,
    /// The seller whose consent / EBR records count (records without a seller count for all).
    pub seller: Option<String>,
    /// Frequency caps "per subject" count calls per number and subject (default: the campaign id).
    pub subject: Option<String>,
    /// Why the campaign's calls are placed: the law cares about marketing calls first.
    pub purpose: Purpose,
    /// How they are placed (prerecorded includes artificial and AI voices).
    pub method: CallMethod,
    /// Call types X-Callgate-Call-Type may select besides the above, e.g. ["autodialed"].
    pub allowed_call_types: Vec<CallType>,
    /// Shadow mode: evaluate and record everything, forward anyway; decisions that would have
    /// blocked are counted as callgate_decisions_total{verdict="would_block"}. Roll out with it.
    pub shadow: bool,
    /// Caller IDs (From / P-Asserted-Identity) this campaign may present; empty: any number. An
    /// entry is a number, or a table with the period it is authorized for and where the proof is
    /// (kept in each call record; presented outside the period: blocked as caller_id_unlisted):
    ///   caller_ids = ["+12025550100",
    ///                 { number = "+13125550100", authorized_from = "2026-01-01",
    ///                   authorized_to = "2026-12-31", evidence = "LOA 2026-014 (carrier Acme)" }]
    pub caller_ids: Vec<CallerIdEntry>,
    /// Marketing calls without a caller ID (anonymous, Privacy: id, no number) are rejected.
    pub require_caller_id: bool,
    /// Dialer addresses whose calls belong to this campaign when they name none.
    pub sources: Vec<IpNet>,
    /// Consumers or businesses (kept in each call record).
    pub audience: Audience,
    /// The script or prerecorded message used (a dialer's script header overrides it).
    pub script: Option<String>,
    /// Stop the campaign's marketing calls while its 30-day abandonment rate is above this
    /// share (0.03 = 3%, the TSR's and the FCC's limit); off when unset.
    pub max_abandonment_rate: Option<f64>,
    /// The answered calls the window must hold before that rule applies.
    pub abandonment_min_answered: u64,
}

impl Default for CampaignConfig {
    fn default() -> Self {
        CampaignConfig {
            id: "default".into(),
            seller: None,
            subject: None,
            purpose: Purpose::Marketing,
            method: CallMethod::Manual,
            allowed_call_types: vec![],
            shadow: false,
            caller_ids: vec![],
            require_caller_id: true,
            sources: vec![],
            audience: Audience::Consumer,
            script: None,
            max_abandonment_rate: None,
            abandonment_min_answered: 100,
        }
    }
}

/// A caller ID a campaign may present: a number, or a number with the period it is authorized
/// for and the evidence of that authority (TSR 310.5(a)(2): "proof of the authority").
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum CallerIdEntry {
    Number(String),
    Authorized(AuthorizedCallerId),
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorizedCallerId {
    /// The caller ID, in any form (`+1 212 555 0143`, `2125550143`).
    pub number: String,
    /// First day (UTC, `YYYY-MM-DD`) the number may be presented.
    pub authorized_from: Option<String>,
    /// Last day (UTC, `YYYY-MM-DD`) the number may be presented.
    pub authorized_to: Option<String>,
    /// Where the proof is: a letter of authorization, a carrier's assignment, a contract id.
    pub evidence: Option<String>,
}

/// How long records are kept, and how.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RecordsConfig {
    /// Audit files older than this many days are removed by an explicit prune only
    /// (`callgate records prune`, `POST /v1/records/prune`). Default: five years (TSR).
    pub retention_days: u32,
    /// Compress each day's file (gzip) once it is sealed.
    pub compress: bool,
    /// Keep the records index (`records-index.sqlite` in the audit directory) current while
    /// running, so `records find`, `records dossier` and `GET /v1/records` answer from it.
    pub index: bool,
    /// How often the index reads what the log gained (milliseconds).
    pub index_interval_ms: u64,
}

impl Default for RecordsConfig {
    fn default() -> Self {
        RecordsConfig {
            retention_days: 1826,
            compress: true,
            index: true,
            index_interval_ms: 1000,
        }
    }
}

/// Several instances, one compliance state: opt-outs, consent records and emergency closures
/// kept in PostgreSQL and followed by every instance. Off without `url` (each instance keeps
/// its own files).
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SharedConfig {
    /// `postgres://user:password@host1,host2/db?target_session_attrs=read-write`: the
    /// database every instance shares (the first host that accepts writes is used).
    pub url: Option<String>,
    /// Marketing calls fail closed (`shared_state_stale`) when the database has not confirmed
    /// this instance current for this long (milliseconds).
    pub max_lag_ms: u64,
    /// How often the instance asks the database for what changed, besides being told by
    /// LISTEN/NOTIFY (milliseconds; at most half of `max_lag_ms`).
    pub poll_ms: u64,
    /// The longest a connection or a query may take before it counts as failed (milliseconds).
    pub timeout_ms: u64,
    /// When the instance is not current, or a call's frequency caps could not be counted in
    /// the database within `timeout_ms`: `reject` the call (default) or `allow` it, recording
    /// the reason (`shared_state_stale`, `frequency_cap_unknown`).
    pub on_stale: FailMode,
    /// Where the instance notes the last change it applied, to resume from it after a
    /// restart (default: `shared-cursor` beside `lists.optout_journal`).
    pub cursor_file: Option<PathBuf>,
    /// The name this instance goes by in the cluster (the console's list of instances, and
    /// each change it records; 1-64 bytes). Default: the host name and the admin port,
    /// `host:9090`. Renaming an instance makes its earlier records another instance's.
    pub instance_name: Option<String>,
    /// Copy every other instance's records from the database into `cluster/` in the audit
    /// directory, so this instance's console and reports show the whole cluster (and hold a
    /// copy of every log).
    pub mirror_records: bool,
}

impl Default for SharedConfig {
    fn default() -> Self {
        SharedConfig {
            url: None,
            max_lag_ms: 5000,
            poll_ms: 1000,
            timeout_ms: 3000,
            on_stale: FailMode::Reject,
            cursor_file: None,
            instance_name: None,
            mirror_records: true,
        }
    }
}

/// Call records: how calls are followed to their end.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CallsConfig {
    /// An answered call with no BYE (and no session timer) is recorded as ended by timeout
    /// after this long.
    pub max_duration_secs: u64,
    /// A header the dialer may put on its BYE to say how the call ended
    /// (`abandoned`, `transferred`...).
    pub disposition_header: String,
    /// A header the dialer may put on its INVITE naming the script or recorded message.
    pub script_header: String,
    /// An answered call the dialer ends within this many seconds counts as abandoned (a
    /// predictive dialer hanging up when no agent was free); unset: only the dialer's mark.
    pub abandon_secs: Option<u64>,
    /// Calls followed at once (ringing or answered). Past it a new call is answered 503 +
    /// Retry-After before any decision, counted and logged: an open call costs about 1 KB
    /// (measured with `benches/open_calls.sh`), so the default bounds them near 500 MB.
    pub max_open: usize,
}

impl Default for CallsConfig {
    fn default() -> Self {
        CallsConfig {
            max_duration_secs: 4 * 3600,
            disposition_header: "X-Callgate-Disposition".into(),
            script_header: "X-Callgate-Script".into(),
            abandon_secs: None,
            max_open: 500_000,
        }
    }
}

/// SIP: where callgate listens, how it proxies (RFC 3261, stateful), and the bounds on connections,
/// messages and transactions.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// Address for SIP over UDP and TCP (same port), toward dialers and the upstream alike.
    pub listen: SocketAddr,
    /// Host[:port] written into Via and Record-Route. Default: the listen address, or when that is
    /// 0.0.0.0 the local address used to reach the upstream.
    pub advertise: Option<String>,
    /// Listen for SIP over UDP on `listen`.
    pub udp: bool,
    /// Listen for SIP over TCP on `listen` (same port as UDP).
    pub tcp: bool,
    /// Record-Route initial INVITEs, so in-dialog requests (BYE, re-INVITE, ...) come back through
    /// callgate. Required: without it no BYE passes callgate and no call record could say how a
    /// call ended, so `false` is a configuration error.
    pub record_route: bool,
    /// Answer forwarded INVITEs with 100 Trying at once (RFC 3261 stateful proxy behaviour; stops
    /// dialer retransmissions); the upstream's own 100 is then not relayed.
    pub send_100_trying: bool,
    /// Larger messages are dropped (UDP) or end the connection (TCP), and are counted.
    pub max_message_bytes: usize,
    /// Kernel receive buffer of the UDP socket (SO_RCVBUF); 0 keeps the system default.
    pub udp_receive_buffer_bytes: usize,
    /// Threads receiving SIP over UDP, each with its own socket on `listen` (SO_REUSEPORT): the
    /// kernel gives each sender (address and port) to one of them, so a peer's messages are
    /// handled in the order they came. 1: one thread, which also serves TCP and TLS.
    pub workers: usize,
    /// Open SIP TCP and TLS connections at most; past it new connections are refused.
    pub tcp_max_connections: usize,
    /// A TCP or TLS connection with no message for this long is closed.
    pub tcp_idle_timeout_secs: u64,
    /// A message must arrive whole within this many seconds of its first byte (slow-loris).
    pub tcp_message_timeout_secs: u64,
    /// How long INVITE transaction state is kept (retransmissions, ACK, CANCEL): 64*T1 = 32 s is
    /// the RFC minimum.
    pub transaction_timeout_secs: u64,
    /// RFC 3261 Timer C: a forwarded INVITE without a final response this long is cancelled
    /// toward the upstream and answered 408 (at least 180).
    pub timer_c_secs: u64,
    /// Where INVITEs from the upstream addressed to callgate itself go (inbound calls). Unset: 404.
    pub inbound_target: Option<SocketAddr>,
    /// On SIGTERM: how long forwarded INVITEs may take to get their final response.
    pub drain_timeout_secs: u64,
    /// `Retry-After` on the 503 that new INVITEs get while draining.
    pub drain_retry_after_secs: u32,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: "0.0.0.0:5060".parse().unwrap(),
            advertise: None,
            udp: true,
            tcp: true,
            record_route: true,
            send_100_trying: true,
            max_message_bytes: 65_535,
            udp_receive_buffer_bytes: 4 << 20,
            workers: 1,
            tcp_max_connections: 1024,
            tcp_idle_timeout_secs: 600,
            tcp_message_timeout_secs: 10,
            transaction_timeout_secs: 64,
            timer_c_secs: 180,
            inbound_target: None,
            drain_timeout_secs: 10,
            drain_retry_after_secs: 30,
        }
    }
}

/// SIP over TLS toward dialers (the listener) and who may call by client certificate.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Address of the SIP-over-TLS listener; unset: none.
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain (leaf first) and private key (PKCS#8, PKCS#1 or SEC1). Re-read on
    /// SIGHUP and POST /v1/reload: renew by writing the new files and reloading; new connections
    /// get the new certificate, open ones keep theirs, and a file that does not load is refused
    /// (the certificate in service stays; callgate_tls_reloads_total{result="error"}).
    /// callgate_tls_cert_expiry_timestamp_seconds{role} tells when each certificate expires.
    pub cert: Option<PathBuf>,
    /// The private key of `cert` (PEM).
    pub key: Option<PathBuf>,
    /// CAs that dialers' client certificates are verified against; unset: none asked for.
    pub client_ca: Option<PathBuf>,
    /// Refuse TLS connections without a valid client certificate (needs client_ca).
    pub require_client_cert: bool,
    /// Client-certificate identities (DNS name or subject CN) that may place calls from any
    /// source address.
    pub dialer_names: Vec<String>,
    /// A TLS handshake must finish within this many seconds
    /// (callgate_dropped_messages_total{reason="tls_handshake_timeout"}).
    pub handshake_timeout_secs: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            listen: None,
            cert: None,
            key: None,
            client_ca: None,
            require_client_cert: false,
            dialer_names: vec![],
            handshake_timeout_secs: 10,
        }
    }
}

/// The carrier or PBX every allowed call goes to.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// The carrier trunk or PBX that allowed calls are sent to. Requests from this exact address
    /// are treated as the upstream side (inbound, no outbound policy).
    pub address: String,
    /// "udp", "tcp" or "tls"
    pub transport: Transport,
    /// Further source addresses of the upstream side (a carrier sending from several IPs, or
    /// over TCP from ephemeral ports).
    pub sources: Vec<IpNet>,
    /// With `transport = "tls"`: the CAs the upstream's certificate must chain to.
    pub tls_ca: Option<PathBuf>,
    /// The name the upstream's certificate must carry; default: the host of `address`.
    pub tls_server_name: Option<String>,
    /// A client certificate to present to the upstream (mutual TLS), with its key.
    pub tls_cert: Option<PathBuf>,
    /// The private key of `tls_cert` (PEM).
    pub tls_key: Option<PathBuf>,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            address: "127.0.0.1:5080".into(),
            transport: Transport::Udp,
            sources: vec![],
            tls_ca: None,
            tls_server_name: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// Who may place calls through callgate (everyone else gets 403), and how fast.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DialersConfig {
    /// Only these sources may send requests toward the upstream (anything else: 403, counted).
    /// An open SIP proxy in front of a carrier trunk is a toll-fraud target: list your dialers.
    pub allow: Vec<IpNet>,
    /// New calls (initial INVITEs) per second allowed from one source address; 0 = no limit.
    pub max_calls_per_second: u32,
    /// How many calls above the rate a source may send at once.
    pub burst: u32,
    /// The telemarketer each dialer is recorded as: name -> its source networks. A source not
    /// named here is recorded by its TLS certificate name, else its address.
    pub names: std::collections::BTreeMap<String, Vec<IpNet>>,
}

impl Default for DialersConfig {
    fn default() -> Self {
        DialersConfig {
            allow: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            max_calls_per_second: 0,
            burst: 100,
            names: Default::default(),
        }
    }
}

/// How a dialed string becomes a number: prefixes stripped, service codes passed.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct NumbersConfig {
    /// Dialer prefixes to strip (only when what remains is a valid number), e.g. ["9"] or a tech
    /// prefix like ["1010"].
    pub strip_prefixes: Vec<String>,
    /// Emergency and N11 service codes: always forwarded at once, never checked, always logged.
    pub service_codes: Vec<String>,
    /// Country calling codes calls may go to (`["1"]`: the NANP only); a call to any other
    /// country is rejected (`country_not_allowed`) whatever its type. Empty: any country.
    pub allowed_countries: Vec<String>,
}

impl Default for NumbersConfig {
    fn default() -> Self {
        NumbersConfig {
            strip_prefixes: vec![],
            service_codes: [
                "911", "933", "988", "211", "311", "411", "511", "611", "711", "811",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            allowed_countries: vec![],
        }
    }
}

/// What to do when a check cannot be made: `reject` the marketing call (fail closed) or `allow` it
/// (fail open, recorded as such).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Fail closed: reject the call.
    Reject,
    /// Fail open: forward the call, record the reason.
    Allow,
}

/// The compliance rules in force and what to do when the data they need is missing or stale.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// When the called number cannot be extracted or normalized (reason `unparseable_number`).
    pub on_unparseable_number: FailMode,
    /// When the national list is missing or older than `national_max_age_days` (FTC 31-day
    /// rule, 16 CFR 310.4(b)(3)(iv); reason `stale_list`).
    pub on_stale_national_list: FailMode,
    /// When any other configured list failed to load and has no earlier version (reason
    /// `list_unavailable`).
    pub on_unavailable_list: FailMode,
    /// When any other list with a download date is older than its `max_age_days` (reason
    /// `stale_list`).
    pub on_stale_list: FailMode,
    /// The FTC 31-day rule: a national list downloaded longer ago than this is stale; a list
    /// manifest can lower it per list, never raise it.
    pub national_max_age_days: u32,
    /// The compliance rules: federal and per state, each with its source (`config/rules.toml`).
    pub rules: PathBuf,
    /// The holiday calendars, one file a year (`YYYY.toml`).
    pub holidays_dir: PathBuf,
    /// A +1 number whose area code has no known place (a marketing call cannot be timed).
    pub on_unknown_location: FailMode,
    /// A marketing call to a country outside the NANP, for which callgate has no policy (its
    /// law on consent, calling hours and lists is not known): `country_not_configured`.
    pub on_country_not_configured: FailMode,
    /// The same for informational and debt-collection calls.
    pub country_not_configured_other: FailMode,
    /// A rule about wireless numbers applies but no list of kind "wireless" is loaded.
    pub on_unknown_line_type: FailMode,
    /// A rule with a holiday window applies in a year no calendar file covers.
    pub on_missing_calendar: FailMode,
    /// Add `Retry-After` (seconds until the calling window opens) to outside-hours rejections.
    pub retry_after_hours: bool,
    /// An autodialed or prerecorded call to a US number placed under a consent record needs a
    /// Reassigned Numbers Database answer `no` about the consent's date or an earlier one (no
    /// disconnection since), queried within this many days (the safe harbor of 47 CFR
    /// 64.1200(m)); without one it is blocked (`rnd_check_missing`). Unset: none needed.
    pub rnd_max_age_days: Option<u32>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            on_unparseable_number: FailMode::Reject,
            on_stale_national_list: FailMode::Reject,
            on_unavailable_list: FailMode::Reject,
            on_stale_list: FailMode::Reject,
            national_max_age_days: 31,
            rules: "config/rules.toml".into(),
            holidays_dir: "config/holidays".into(),
            on_unknown_location: FailMode::Reject,
            on_country_not_configured: FailMode::Reject,
            country_not_configured_other: FailMode::Allow,
            on_unknown_line_type: FailMode::Reject,
            on_missing_calendar: FailMode::Reject,
            retry_after_hours: true,
            rnd_max_age_days: None,
        }
    }
}

/// How a blocked call is answered.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RejectConfig {
    /// The final response sent to the dialer for a blocked call. 403 Forbidden and 608 Rejected
    /// (RFC 8688) are common alternatives.
    pub status: u16,
    /// The reason phrase of that final response.
    pub reason_phrase: String,
    /// Reason: Q.850;cause=<q850_cause>;text="<reason code>"  (21 = call rejected; an unparseable
    /// number uses 28 = invalid number format)
    pub q850_cause: u16,
    /// Add the Reason header above to rejections.
    pub reason_header: bool,
    /// Warning: 399 <host> "<reason code>: <text>"
    pub warning_header: bool,
    /// Per reason code: a different status (e.g. `unparseable_number = 484`).
    pub status_by_reason: std::collections::BTreeMap<Reason, u16>,
}

impl RejectConfig {
    /// The status a block with this primary reason is answered with.
    pub(crate) fn status_for(&self, primary: Option<Reason>) -> u16 {
        primary
            .and_then(|r| self.status_by_reason.get(&r))
            .copied()
            .unwrap_or(self.status)
    }
}

impl Default for RejectConfig {
    fn default() -> Self {
        RejectConfig {
            status: 603,
            reason_phrase: "Decline".into(),
            q850_cause: 21,
            reason_header: true,
            warning_header: true,
            status_by_reason: Default::default(),
        }
    }
}

/// Where the lists and the journals (opt-outs, consent, caps, emergencies) are, and how list files
/// are picked up.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ListsConfig {
    /// Holds lists.toml (which lists, their kind, file and download date) and the list files.
    pub data_dir: PathBuf,
    /// The manifest's file name in `data_dir`.
    pub manifest: String,
    /// Opt-outs posted to the API: append-only, fsynced before the API answers 201.
    pub optout_journal: PathBuf,
    /// Consent / EBR / address records: append-only, fsynced before the API answers.
    pub consent_journal: PathBuf,
    /// Frequency-cap counters.
    pub caps_journal: PathBuf,
    /// State-of-emergency closures set through the API.
    pub emergency_file: PathBuf,
    /// Reload the lists when the manifest or a list file changes on disk, without a signal
    /// (all or nothing, as a SIGHUP reload). A change is read once it has held still for one
    /// interval, so a file still being copied is not read half-written.
    pub watch: bool,
    /// How often `watch` looks at the files (a change is in service within two intervals).
    pub watch_interval_secs: u64,
}

impl Default for ListsConfig {
    fn default() -> Self {
        ListsConfig {
            data_dir: "config/sample-data".into(),
            manifest: "lists.toml".into(),
            optout_journal: "var/optouts.jsonl".into(),
            consent_journal: "var/consent.jsonl".into(),
            caps_journal: "var/caps.bin".into(),
            emergency_file: "var/emergency.json".into(),
            watch: false,
            watch_interval_secs: 5,
        }
    }
}

/// The hash-chained audit log: where, how fast it is fsynced, and what happens when it cannot be
/// written.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// One JSON line per decision in audit-YYYY-MM-DD.jsonl (UTC days).
    pub dir: PathBuf,
    /// Lines waiting for the writer. At this many, new marketing calls get 503
    /// `records_backlog` (their refusal recorded); at twice this, every new call does. Nothing
    /// is dropped, and calls in progress are never held.
    pub queue_capacity: usize,
    /// Records are fsynced at least this often.
    pub flush_interval_ms: u64,
    /// "async": records are fsynced within `flush_interval_ms`, calls do not wait.
    /// "before-forward": an allowed INVITE is forwarded only once its record is on disk
    /// (group commit: one fsync covers every record that arrived meanwhile).
    pub durability: Durability,
    /// When a record cannot be written (disk full, I/O error): "reject" new outbound marketing
    /// calls with 503 until writing works again (default), or "allow" them unrecorded.
    pub on_write_error: FailMode,
}

/// When a forwarded call's record is on disk: `async` (within `flush_interval_ms`) or `before-
/// forward` (before the INVITE leaves).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    Async,
    BeforeForward,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            dir: "var/audit".into(),
            queue_capacity: 65_536,
            flush_interval_ms: 100,
            durability: Durability::Async,
            on_write_error: FailMode::Reject,
        }
    }
}

/// The admin listener: the HTTP API, `/metrics`, `/healthz` and `/readyz`.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// HTTP API and /metrics. Any non-loopback address requires a token or client certificates.
    pub listen: SocketAddr,
    /// Bearer token; may also come from the CALLGATE_ADMIN_TOKEN environment variable.
    pub token: Option<String>,
    /// HTTPS for the admin API: certificate chain and key (PEM).
    pub tls_cert: Option<PathBuf>,
    /// The private key of `tls_cert` (PEM).
    pub tls_key: Option<PathBuf>,
    /// Mutual TLS: every client must present a certificate from these CAs.
    pub client_ca: Option<PathBuf>,
    /// Who may sign in to the console (`/console`), one `[[admin.user]]` table each. With none,
    /// the console is open on loopback when no token is set, and closed otherwise.
    pub user: Vec<AdminUser>,
    /// A console session ends after this many minutes without a request.
    pub session_idle_minutes: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: "127.0.0.1:8080".parse().unwrap(),
            token: None,
            tls_cert: None,
            tls_key: None,
            client_ca: None,
            user: vec![],
            session_idle_minutes: 30,
        }
    }
}

/// A console user: a password or a client certificate signs them in.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminUser {
    /// Shown in the console and written in the audit record of every change the user makes.
    pub name: String,
    /// `viewer` (reads everything) or `operator` (also adds opt-outs and consent, closes
    /// states in an emergency, reloads the lists).
    pub role: AdminRole,
    /// The password's Argon2 hash, as `callgate admin hash-password` prints it (never the
    /// password itself).
    #[schemars(with = "Option<String>")]
    pub password_hash: Option<PasswordHashText>,
    /// The name on a client certificate (`admin.client_ca`) that signs in as this user.
    pub certificate: Option<String>,
}

/// What a console user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AdminRole {
    Viewer,
    Operator,
}

/// Logging to standard error (the journal under systemd).
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// error, warn, info, debug, trace (CALLGATE_LOG overrides, with tracing filter syntax)
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: key `{key}`: {message}")]
    Invalid {
        file: String,
        line: usize,
        column: usize,
        key: String,
        message: String,
    },
}

/// Deserialize TOML, turning errors into `file:line:column: key `a.b`: message`.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    file: &str,
    src: &str,
) -> Result<T, ConfigError> {
    toml::from_str(src).map_err(|e| {
        let (line, column, key) = match e.span() {
            Some(span) => locate(src, span.start),
            None => (0, 0, String::from("?")),
        };
        ConfigError::Invalid {
            file: file.into(),
            line,
            column,
            key,
            message: e.message().trim().to_string(),
        }
    })
}

/// Line, column and dotted key path of a byte offset in TOML source. The key is the nearest
/// `key =` on that line inside the nearest `[table]` above it.
fn locate(src: &str, offset: usize) -> (usize, usize, String) {
    let offset = offset.min(src.len());
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = offset - line_start + 1;
    let this_line = src[line_start..].lines().next().unwrap_or("");
    let header = |l: &str| {
        l.trim()
            .trim_matches(|c| c == '[' || c == ']')
            .trim()
            .to_string()
    };
    // An error on a `[table]` line is about that table (a misspelled `[dialer]`).
    if this_line.trim_start().starts_with('[') {
        return (line, column, header(this_line));
    }
    let mut table = String::new();
    for l in before[..line_start].lines().rev() {
        let t = l.trim();
        if t.starts_with('[') {
            table = header(t);
            break;
        }
    }
    let key = match this_line.split_once('=') {
        Some((k, _)) => k.trim().trim_matches('"').to_string(),
        None => String::new(),
    };
    let path = match (table.is_empty(), key.is_empty()) {
        (true, _) => key,
        (false, true) => table,
        (false, false) => format!("{table}.{key}"),
    };
    (line, column, path)
}

/// An error about `key` (dotted; its last part is searched for as a `leaf =` line), located
/// at the first such line after `anchor` (e.g. `id = "X"` for one entry of an array of
/// tables), or without an anchor after the key's `[table]` header. A key the file does not
/// have points at that anchor or header.
pub(crate) fn error_at_key(
    file: &str,
    src: &str,
    anchor: Option<&str>,
    key: &str,
    message: String,
) -> ConfigError {
    let (table, leaf) = key.rsplit_once('.').unwrap_or(("", key));
    let header = format!("[{table}]");
    let base = match anchor {
        Some(a) => src.find(a),
        None if !table.is_empty() => line_starting(src, &header),
        None => None,
    }
    .unwrap_or(0);
    let rest = &src[base..];
    // `leaf =` at the start of a line, so `cert` does not find `tls_cert =`.
    let assignment = line_starting_with(rest, |l| {
        l.strip_prefix(leaf)
            .is_some_and(|after| after.trim_start().starts_with('='))
    });
    let offset = base + assignment.or_else(|| rest.find(leaf)).unwrap_or(0);
    let (line, column, _) = locate(src, offset);
    ConfigError::Invalid {
        file: file.into(),
        line,
        column,
        key: key.into(),
        message,
    }
}

/// Offset of the first line of `src` that is `text` once trimmed.
fn line_starting(src: &str, text: &str) -> Option<usize> {
    line_starting_with(src, |l| l.trim_end() == text)
}

/// Offset of the first line of `src` (leading blanks skipped) that `pred` accepts.
fn line_starting_with(src: &str, pred: impl Fn(&str) -> bool) -> Option<usize> {
    let mut at = 0;
    for line in src.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if pred(trimmed) {
            return Some(at + (line.len() - trimmed.len()));
        }
        at += line.len();
    }
    None
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            file: file.clone(),
            source,
        })?;
        Self::from_str_named(&file, &src)
    }

    /// Every error in a configuration file, not only the first: after each error its line is
    /// set aside and the file read again (at most 50 times). It stops early where setting a
    /// line aside would invent errors: a table header, or a value that spans lines.
    pub fn errors_in_file(path: &Path) -> Vec<ConfigError> {
        let file = path.display().to_string();
        let mut src = match std::fs::read_to_string(path) {
            Ok(s) => s,
            Err(source) => return vec![ConfigError::Io { file, source }],
        };
        let mut errors = vec![];
        for _ in 0..50 {
            let err = match Self::from_str_named(&file, &src) {
                Ok(_) => break,
                Err(e) => e,
            };
            let line = match &err {
                ConfigError::Invalid { line, .. } if *line > 0 => Some(*line),
                _ => None,
            };
            errors.push(err);
            let Some(line) = line else { break };
            let mut lines: Vec<&str> = src.lines().collect();
            let text = lines.get(line - 1).map(|l| l.trim()).unwrap_or("");
            let spans_lines = text.ends_with('[') || text.ends_with('{') || text.contains("\"\"\"");
            if text.is_empty() || text.starts_with('[') || spans_lines {
                break;
            }
            lines[line - 1] = "";
            src = lines.join("\n");
        }
        errors
    }

    pub fn from_str_named(file: &str, src: &str) -> Result<Config, ConfigError> {
        let mut cfg: Config = parse_toml(file, src)?;
        cfg.origin = (file.to_string(), src.into());
        cfg.validate(file, src)?;
        Ok(cfg)
    }

    /// Checks that need more than a type: named by key, located by searching for the key.
    fn validate(&self, file: &str, src: &str) -> Result<(), ConfigError> {
        let fail = |key: &str, message: String| Err(error_at_key(file, src, None, key, message));
        if !(300..=699).contains(&self.reject.status) {
            return fail(
                "reject.status",
                format!(
                    "{} is not a final error status (300-699)",
                    self.reject.status
                ),
            );
        }
        for (reason, status) in &self.reject.status_by_reason {
            if !(300..=699).contains(status) {
                return fail(
                    "reject.status_by_reason",
                    format!("{} = {status} is not 300-699", reason.code()),
                );
            }
        }
        if self.upstream.address.trim().is_empty() {
            return fail("upstream.address", "must be host:port".into());
        }
        if let Some(why) = self.admin_exposure_error() {
            return fail("admin.listen", why);
        }
        self.validate_tls(&fail)?;
        self.validate_users(file, src)?;
        self.validate_bounds(&fail)?;
        self.validate_shared(&fail)?;
        if self.sip.workers > 1 && self.shared.url.is_some() {
            // The shared count answers a new call later, on the first worker; a CANCEL from
            // the same dialer handled meanwhile by another worker could overtake its INVITE.
            return fail(
                "sip.workers",
                "must be 1 with [shared]: the shared frequency-cap count answers calls on the \
                 first worker, and per-call order across workers is not yet kept for it"
                    .into(),
            );
        }
        if !self.sip.record_route {
            return fail(
                "sip.record_route",
                "must be true: without Record-Route the BYE of a call never passes callgate, \
                 and no call record could say how or when a call ended"
                    .into(),
            );
        }
        for p in self
            .numbers
            .strip_prefixes
            .iter()
            .chain(&self.numbers.service_codes)
        {
            if p.is_empty() || p.len() > 8 || !p.bytes().all(|c| c.is_ascii_digit()) {
                return fail("numbers", format!("`{p}` must be 1-8 digits"));
            }
        }
        for c in &self.numbers.allowed_countries {
            let digits = c.strip_prefix('+').unwrap_or(c);
            let ok = (1..=3).contains(&digits.len())
                && !digits.starts_with('0')
                && digits.bytes().all(|d| d.is_ascii_digit());
            if !ok {
                let why =
                    format!("`{c}` is not a country calling code (1-3 digits, e.g. \"1\", \"44\")");
                return fail("numbers.allowed_countries", why);
            }
        }
        Ok(())
    }

    /// Console users: named once each, each able to sign in somehow, a certificate naming
    /// one user at most.
    fn validate_users(&self, file: &str, src: &str) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        let mut certificates = std::collections::HashSet::new();
        for u in &self.admin.user {
            let anchor = format!("\"{}\"", u.name);
            let fail = |key: &str, message: String| {
                Err(error_at_key(file, src, Some(&anchor), key, message))
            };
            if u.name.trim().is_empty() || u.name.chars().any(char::is_control) {
                return fail("admin.user.name", format!("`{}` is not a name", u.name));
            }
            if !seen.insert(u.name.as_str()) {
                return fail("admin.user.name", format!("`{}` is named twice", u.name));
            }
            if u.password_hash.is_none() && u.certificate.is_none() {
                return fail(
                    "admin.user.name",
                    format!(
                        "`{}` has neither password_hash nor certificate: nothing signs them in",
                        u.name
                    ),
                );
            }
            if u.certificate.is_some() && self.admin.client_ca.is_none() {
                return fail(
                    "admin.user.certificate",
                    "a certificate signs in only with admin.client_ca (mutual TLS)".into(),
                );
            }
            if let Some(c) = &u.certificate {
                if !certificates.insert(c.as_str()) {
                    let why = format!("`{c}` already signs in another user");
                    return fail("admin.user.certificate", why);
                }
            }
        }
        Ok(())
    }

    /// The shared database: a URL PostgreSQL's client reads, polled often enough to confirm
    /// the instance current within its allowed lag.
    fn validate_shared(
        &self,
        fail: &dyn Fn(&str, String) -> Result<(), ConfigError>,
    ) -> Result<(), ConfigError> {
        let shared = &self.shared;
        if let Some(url) = &shared.url {
            if let Err(e) = url.parse::<tokio_postgres::Config>() {
                // The URL may hold a password: the error names the problem, not the URL.
                return fail("shared.url", format!("not a PostgreSQL URL: {e}"));
            }
        }
        if shared.poll_ms.saturating_mul(2) > shared.max_lag_ms {
            let why = format!(
                "{} is more than half of shared.max_lag_ms ({}): one late poll would make the \
                 instance stale",
                shared.poll_ms, shared.max_lag_ms
            );
            return fail("shared.poll_ms", why);
        }
        if let Some(name) = &shared.instance_name {
            // Each instance's records are copied into a directory named after it.
            if name.trim().is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
                let why = "must be 1-64 bytes, without control characters".into();
                return fail("shared.instance_name", why);
            }
        }
        let transaction_ms = self.sip.transaction_timeout_secs.saturating_mul(1000);
        if shared.timeout_ms >= transaction_ms {
            let why = format!(
                "{} is not below sip.transaction_timeout_secs ({} s): a call held for a \
                 frequency-cap count would be given up before its answer",
                shared.timeout_ms, self.sip.transaction_timeout_secs
            );
            return fail("shared.timeout_ms", why);
        }
        Ok(())
    }

    /// Every number that becomes a duration, a deadline or a size has a range: an absurd
    /// value is named here rather than overflowing a deadline or an allocation later.
    fn validate_bounds(
        &self,
        fail: &dyn Fn(&str, String) -> Result<(), ConfigError>,
    ) -> Result<(), ConfigError> {
        for (key, value, min, max) in self.bounds() {
            if !(min..=max).contains(&value) {
                return fail(key, format!("{value} is outside {min}..={max}"));
            }
        }
        Ok(())
    }

    /// Every number that has a range: (key, its value here, least, most). The configuration
    /// reference shows the ranges.
    pub fn bounds(&self) -> [(&'static str, u64, u64, u64); 24] {
        const DAY: u64 = 86_400;
        let (sip, calls) = (&self.sip, &self.calls);
        // One line per setting: the table reads better than rustfmt's five lines each.
        #[rustfmt::skip]
        let bounds = [
            ("calls.max_duration_secs", calls.max_duration_secs, 1, 7 * DAY),
            ("admin.session_idle_minutes", self.admin.session_idle_minutes, 1, 24 * 60),
            ("calls.abandon_secs", calls.abandon_secs.unwrap_or(0), 0, 3600),
            ("calls.max_open", calls.max_open as u64, 1, 100_000_000),
            ("sip.max_message_bytes", sip.max_message_bytes as u64, 1024, 65_535),
            ("sip.udp_receive_buffer_bytes", sip.udp_receive_buffer_bytes as u64, 0, 1 << 30),
            ("sip.workers", sip.workers as u64, 1, crate::sip::MAX_WORKERS as u64),
            ("sip.tcp_max_connections", sip.tcp_max_connections as u64, 1, 1_000_000),
            ("sip.tcp_idle_timeout_secs", sip.tcp_idle_timeout_secs, 1, DAY),
            ("sip.tcp_message_timeout_secs", sip.tcp_message_timeout_secs, 1, 3600),
            ("sip.transaction_timeout_secs", sip.transaction_timeout_secs, 32, 3600),
            ("sip.timer_c_secs", sip.timer_c_secs, 180, 3600),
            ("sip.drain_timeout_secs", sip.drain_timeout_secs, 0, 3600),
            ("sip.drain_retry_after_secs", u64::from(sip.drain_retry_after_secs), 0, DAY),
            ("tls.handshake_timeout_secs", self.tls.handshake_timeout_secs, 1, 3600),
            ("audit.queue_capacity", self.audit.queue_capacity as u64, 1, 16 << 20),
            ("audit.flush_interval_ms", self.audit.flush_interval_ms, 1, 60_000),
            ("records.retention_days", u64::from(self.records.retention_days), 1, 100 * 366),
            ("policy.national_max_age_days", u64::from(self.policy.national_max_age_days), 1, 36_500),
            ("lists.watch_interval_secs", self.lists.watch_interval_secs, 1, 3600),
            ("records.index_interval_ms", self.records.index_interval_ms, 10, 3_600_000),
            ("shared.max_lag_ms", self.shared.max_lag_ms, 100, 3_600_000),
            ("shared.poll_ms", self.shared.poll_ms, 20, 1_800_000),
            ("shared.timeout_ms", self.shared.timeout_ms, 100, 60_000),
        ];
        bounds
    }

    /// TLS settings that only make sense together.
    fn validate_tls(
        &self,
        fail: &dyn Fn(&str, String) -> Result<(), ConfigError>,
    ) -> Result<(), ConfigError> {
        let t = &self.tls;
        let uses_client_certs = t.require_client_cert || !t.dialer_names.is_empty();
        if t.listen.is_some() && (t.cert.is_none() || t.key.is_none()) {
            let key = if t.cert.is_none() {
                "tls.cert"
            } else {
                "tls.key"
            };
            return fail(
                key,
                "the TLS listener (tls.listen) needs a certificate and key".into(),
            );
        }
        if uses_client_certs && t.client_ca.is_none() {
            return fail(
                "tls.client_ca",
                "require_client_cert and dialer_names need the CAs to verify client certificates against".into(),
            );
        }
        if let Some(n) = t.dialer_names.iter().find(|n| n.trim().is_empty()) {
            return fail("tls.dialer_names", format!("`{n}` is not a name"));
        }
        let u = &self.upstream;
        if u.transport == Transport::Tls && u.tls_ca.is_none() {
            return fail(
                "upstream.tls_ca",
                "transport = \"tls\" needs the CA file the upstream's certificate chains to (e.g. /etc/ssl/certs/ca-certificates.crt)".into(),
            );
        }
        if u.tls_cert.is_some() != u.tls_key.is_some() {
            let key = if u.tls_cert.is_none() {
                "upstream.tls_cert"
            } else {
                "upstream.tls_key"
            };
            return fail(
                key,
                "a client certificate needs both tls_cert and tls_key".into(),
            );
        }
        let a = &self.admin;
        if a.tls_cert.is_some() != a.tls_key.is_some() {
            let key = if a.tls_cert.is_none() {
                "admin.tls_cert"
            } else {
                "admin.tls_key"
            };
            return fail(key, "HTTPS needs both tls_cert and tls_key".into());
        }
        if a.client_ca.is_some() && a.tls_cert.is_none() {
            return fail(
                "admin.client_ca",
                "mutual TLS needs admin.tls_cert and admin.tls_key".into(),
            );
        }
        Ok(())
    }

    /// The SIP listener's TLS files, when it has one.
    pub(crate) fn sip_tls_files(&self) -> Option<crate::tls::ServerFiles> {
        let t = &self.tls;
        t.listen?;
        Some(crate::tls::ServerFiles {
            cert: t.cert.clone()?,
            key: t.key.clone()?,
            client_ca: t.client_ca.clone(),
            require_client_cert: t.require_client_cert,
        })
    }

    /// What the upstream TLS client trusts and presents, when the upstream is over TLS.
    pub(crate) fn upstream_tls_files(&self) -> Option<crate::tls::ClientFiles> {
        let u = &self.upstream;
        (u.transport == Transport::Tls).then_some(())?;
        Some(crate::tls::ClientFiles {
            ca: u.tls_ca.clone()?,
            cert: u.tls_cert.clone(),
            key: u.tls_key.clone(),
        })
    }

    /// The admin API's HTTPS files, when it serves HTTPS.
    pub(crate) fn admin_tls_files(&self) -> Option<crate::tls::ServerFiles> {
        let a = &self.admin;
        Some(crate::tls::ServerFiles {
            cert: a.tls_cert.clone()?,
            key: a.tls_key.clone()?,
            client_ca: a.client_ca.clone(),
            require_client_cert: a.client_ca.is_some(),
        })
    }

    /// The admin token from the config or, if unset there, from `CALLGATE_ADMIN_TOKEN`.
    pub fn admin_token(&self) -> Option<String> {
        self.admin
            .token
            .clone()
            .filter(|t| !t.is_empty())
            .or_else(|| {
                std::env::var("CALLGATE_ADMIN_TOKEN")
                    .ok()
                    .filter(|t| !t.is_empty())
            })
    }
}

impl Config {
    /// An admin API reachable from the network must have a token or require client
    /// certificates. Checked at load and again after command-line overrides.
    pub fn admin_exposure_error(&self) -> Option<String> {
        let guarded = self.admin_token().is_some() || self.admin.client_ca.is_some();
        (!self.admin.listen.ip().is_loopback() && !guarded).then(|| {
            format!(
                "{} is not a loopback address: set admin.token (or CALLGATE_ADMIN_TOKEN) or admin.client_ca (mutual TLS) so the API is not open",
                self.admin.listen
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses() {
        Config::from_str_named("embedded", EMBEDDED_DEFAULT).unwrap();
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = Config::from_str_named("x.toml", "[sip]\nlisten = \"127.0.0.1:5060\"\nlisen = 1\n")
            .unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("x.toml:3:"), "{s}");
        assert!(s.contains("sip.lisen"), "{s}");
    }

    #[test]
    fn several_workers_with_shared_is_an_error_naming_the_key() {
        let text = "[sip]\nworkers = 2\n[shared]\nurl = \"postgres://db/callgate\"\n";
        let s = Config::from_str_named("x.toml", text)
            .unwrap_err()
            .to_string();
        assert!(s.starts_with("x.toml:2:"), "{s}");
        assert!(s.contains("sip.workers"), "{s}");
    }

    #[test]
    fn record_route_off_is_an_error_naming_the_key() {
        let e = Config::from_str_named("x.toml", "[sip]\nudp = true\nrecord_route = false\n")
            .unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("x.toml:3:"), "{s}");
        assert!(s.contains("sip.record_route"), "{s}");
    }

    #[test]
    fn an_absurd_duration_is_an_error_naming_file_line_and_key() {
        for (text, line, key) in [
            (
                "[calls]\nmax_duration_secs = 18446744073709551615\n",
                2,
                "calls.max_duration_secs",
            ),
            (
                "[sip]\nudp = true\ntransaction_timeout_secs = 9223372036854775807\n",
                3,
                "sip.transaction_timeout_secs",
            ),
            (
                "[audit]\nflush_interval_ms = 0\n",
                2,
                "audit.flush_interval_ms",
            ),
            ("[calls]\nmax_open = 0\n", 2, "calls.max_open"),
        ] {
            let s = Config::from_str_named("x.toml", text)
                .unwrap_err()
                .to_string();
            assert!(s.starts_with(&format!("x.toml:{line}:")), "{s}");
            assert!(s.contains(key), "{s}");
        }
    }

    #[test]
    fn a_console_user_error_names_its_line_and_key() {
        let hash = PasswordHashText::of("a long enough password").unwrap();
        let h = hash.as_str();
        for (text, line, key) in [
            (
                "[[admin.user]]\nname = \"alice\"\nrole = \"operator\"\npassword_hash = \"secret\"\n".to_string(),
                4,
                "password_hash",
            ),
            (
                "[[admin.user]]\nname = \"alice\"\nrole = \"admin\"\n".to_string(),
                3,
                "role",
            ),
            (
                format!("[[admin.user]]\nname = \"alice\"\nrole = \"viewer\"\npassword_hash = \"{h}\"\n[[admin.user]]\nname = \"bob\"\nrole = \"viewer\"\n"),
                6,
                "admin.user.name",
            ),
            (
                "[[admin.user]]\nname = \"alice\"\nrole = \"viewer\"\ncertificate = \"alice.example\"\n".to_string(),
                4,
                "admin.user.certificate",
            ),
        ] {
            let s = Config::from_str_named("x.toml", &text)
                .unwrap_err()
                .to_string();
            assert!(s.starts_with(&format!("x.toml:{line}:")), "{s}");
            assert!(s.contains(key), "{s}");
        }
    }

    #[test]
    fn a_console_user_with_a_password_hash_is_read() {
        let hash = PasswordHashText::of("a long enough password").unwrap();
        let text = format!(
            "[[admin.user]]\nname = \"alice\"\nrole = \"operator\"\npassword_hash = \"{}\"\n",
            hash.as_str()
        );
        let cfg = Config::from_str_named("x.toml", &text).unwrap();
        assert_eq!(cfg.admin.user[0].role, AdminRole::Operator);
        assert!(cfg.admin.user[0]
            .password_hash
            .as_ref()
            .unwrap()
            .matches("a long enough password"));
    }

    #[test]
    fn bad_value_names_its_key() {
        let e = Config::from_str_named("x.toml", "[upstream]\ntransport = \"sctp\"\n").unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("x.toml:2:"), "{s}");
        assert!(s.contains("upstream.transport"), "{s}");
    }

    #[test]
    fn non_loopback_admin_needs_a_token() {
        let e =
            Config::from_str_named("x.toml", "[admin]\nlisten = \"0.0.0.0:8080\"\n").unwrap_err();
        assert!(e.to_string().contains("admin.listen"), "{e}");
    }

    #[test]
    fn a_tls_listener_needs_a_certificate() {
        let e =
            Config::from_str_named("x.toml", "[tls]\nlisten = \"127.0.0.1:5061\"\n").unwrap_err();
        assert!(e.to_string().contains("tls.cert"), "{e}");
    }

    #[test]
    fn a_missing_key_points_at_its_table_not_at_a_longer_key_elsewhere() {
        let src = "[admin]\ntls_cert = \"a.crt\"\ntls_key = \"a.key\"\n[tls]\nlisten = \"127.0.0.1:5061\"\nkey = \"k.key\"\n";
        let e = Config::from_str_named("x.toml", src)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.toml:4:"), "the [tls] header: {e}");
        assert!(e.contains("tls.cert"), "{e}");
    }

    #[test]
    fn dialer_names_need_the_client_ca() {
        let e = Config::from_str_named("x.toml", "[tls]\ndialer_names = [\"d.example\"]\n")
            .unwrap_err();
        assert!(e.to_string().starts_with("x.toml:"), "{e}");
        assert!(e.to_string().contains("tls.client_ca"), "{e}");
    }

    #[test]
    fn an_upstream_over_tls_needs_its_ca() {
        let e = Config::from_str_named("x.toml", "[upstream]\ntransport = \"tls\"\n").unwrap_err();
        assert!(e.to_string().contains("upstream.tls_ca"), "{e}");
    }

    #[test]
    fn a_network_admin_api_may_be_guarded_by_client_certificates_instead_of_a_token() {
        let src = "[admin]\nlisten = \"0.0.0.0:8443\"\ntls_cert = \"a.crt\"\ntls_key = \"a.key\"\nclient_ca = \"ca.crt\"\n";
        Config::from_str_named("x.toml", src).unwrap();
    }

    #[test]
    fn admin_client_ca_needs_https() {
        let e = Config::from_str_named("x.toml", "[admin]\nclient_ca = \"ca.crt\"\n").unwrap_err();
        assert!(e.to_string().contains("x.toml:2:"), "{e}");
        assert!(e.to_string().contains("admin.client_ca"), "{e}");
    }

    #[test]
    fn reject_status_must_be_an_error() {
        let e = Config::from_str_named("x.toml", "[reject]\nstatus = 200\n").unwrap_err();
        assert!(e.to_string().contains("x.toml:2:"), "{e}");
    }

    #[test]
    fn a_misspelled_reason_in_status_by_reason_names_file_line_and_key() {
        let text = "[reject.status_by_reason]\nnational_dnc = 607\nnatinal_dnc = 484\n";
        let e = Config::from_str_named("x.toml", text)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.toml:3:"), "{e}");
        assert!(e.contains("reject.status_by_reason"), "{e}");
        assert!(e.contains("unknown reason code `natinal_dnc`"), "{e}");
    }

    #[test]
    fn status_by_reason_applies_to_its_reason_only() {
        let text = "[reject.status_by_reason]\nunparseable_number = 484\n";
        let r = Config::from_str_named("x.toml", text).unwrap().reject;
        assert_eq!(r.status_for(Some(Reason::UnparseableNumber)), 484);
        assert_eq!(r.status_for(Some(Reason::NationalDnc)), 603);
    }

    #[test]
    fn a_misspelled_campaign_purpose_names_file_line_and_key() {
        let text = "[[campaign]]\nid = \"default\"\npurpose = \"marketting\"\n";
        let e = Config::from_str_named("x.toml", text)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.toml:3:"), "{e}");
        assert!(e.contains("campaign.purpose"), "{e}");
        assert!(e.contains("`marketting` is not marketing"), "{e}");
    }

    #[test]
    fn a_misspelled_campaign_method_names_file_line_and_key() {
        let text = "[[campaign]]\nid = \"default\"\nmethod = \"robo\"\n";
        let e = Config::from_str_named("x.toml", text)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.toml:3:"), "{e}");
        assert!(e.contains("campaign.method"), "{e}");
    }

    #[test]
    fn an_unknown_allowed_call_type_names_file_line_and_key() {
        let text =
            "[[campaign]]\nid = \"default\"\nallowed_call_types = [\"informational\", \"sms\"]\n";
        let e = Config::from_str_named("x.toml", text)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.toml:3:"), "{e}");
        assert!(e.contains("campaign.allowed_call_types"), "{e}");
    }

    #[test]
    fn call_types_read_as_the_call_type_header_does() {
        let text = "[[campaign]]\nid = \"default\"\npurpose = \"Sales\"\nmethod = \"predictive\"\n";
        let c = Config::from_str_named("x.toml", text).unwrap();
        assert_eq!(c.campaign[0].purpose, Purpose::Marketing);
        assert_eq!(c.campaign[0].method, CallMethod::Autodialed);
    }

    #[test]
    fn a_misspelled_table_is_named_as_the_key() {
        let text = "[upstream]\naddress = \"127.0.0.1:5070\"\n\n[dialer]\nallow = []\n";
        let e = Config::from_str_named("x.toml", text)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.toml:4:"), "{e}");
        assert!(e.contains("key `dialer`: unknown field `dialer`"), "{e}");
    }

    #[test]
    fn a_shared_timeout_past_the_transaction_timeout_is_refused() {
        let text = "[sip]\ntransaction_timeout_secs = 32\n[shared]\nurl = \"postgres://h/db\"\ntimeout_ms = 40000\n";
        let e = Config::from_str_named("x.toml", text)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.toml:5:"), "{e}");
        assert!(e.contains("shared.timeout_ms"), "{e}");
    }

    #[test]
    fn an_allowed_country_that_is_not_a_calling_code_names_the_key() {
        let text = "[numbers]\nallowed_countries = [\"1\", \"049\"]\n";
        let e = Config::from_str_named("x.toml", text)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.toml:2:"), "{e}");
        assert!(
            e.contains("numbers.allowed_countries") && e.contains("`049`"),
            "{e}"
        );
    }
}
