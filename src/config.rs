//! `callgate.toml`: every setting, its default, and errors that name the file, line and key.
//!
//! Relative paths in the file resolve against the current directory (like most daemons run
//! from a service manager with a working directory), so the repository's sample config works
//! when callgate is started from the repository root.

use ipnet::IpNet;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The repository's `config/callgate.toml`, built in: `callgate run` without `--config` uses it.
pub const EMBEDDED_DEFAULT: &str = include_str!("../config/callgate.toml");

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub sip: SipConfig,
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
    #[serde(rename = "campaign")]
    pub campaign: Vec<CampaignConfig>,
    /// Where this configuration came from (file name, text), to locate errors found later.
    #[serde(skip)]
    pub origin: (String, std::sync::Arc<str>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CampaignsConfig {
    /// Header a dialer may set to name the campaign of a call.
    pub campaign_header: String,
    /// Header a dialer may set to name the call type (purpose and/or method), within the
    /// campaign's `allowed_call_types`.
    pub call_type_header: String,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CampaignConfig {
    pub id: String,
    pub seller: Option<String>,
    pub subject: Option<String>,
    pub purpose: String,
    pub method: String,
    pub allowed_call_types: Vec<String>,
    pub shadow: bool,
    pub caller_ids: Vec<String>,
    pub require_caller_id: bool,
    pub sources: Vec<IpNet>,
}

impl Default for CampaignConfig {
    fn default() -> Self {
        CampaignConfig {
            id: "default".into(),
            seller: None,
            subject: None,
            purpose: "marketing".into(),
            method: "manual".into(),
            allowed_call_types: vec![],
            shadow: false,
            caller_ids: vec![],
            require_caller_id: true,
            sources: vec![],
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
    pub fn lower(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    pub listen: SocketAddr,
    pub advertise: Option<String>,
    pub udp: bool,
    pub tcp: bool,
    pub record_route: bool,
    pub send_100_trying: bool,
    pub max_message_bytes: usize,
    pub tcp_max_connections: usize,
    pub tcp_idle_timeout_secs: u64,
    /// A message must arrive whole within this many seconds of its first byte (slow-loris).
    pub tcp_message_timeout_secs: u64,
    pub transaction_timeout_secs: u64,
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
            tcp_max_connections: 1024,
            tcp_idle_timeout_secs: 600,
            tcp_message_timeout_secs: 10,
            transaction_timeout_secs: 64,
            inbound_target: None,
            drain_timeout_secs: 10,
            drain_retry_after_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    pub address: String,
    pub transport: Transport,
    /// Further source addresses of the upstream side (a carrier sending from several IPs, or
    /// over TCP from ephemeral ports).
    pub sources: Vec<IpNet>,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            address: "127.0.0.1:5080".into(),
            transport: Transport::Udp,
            sources: vec![],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DialersConfig {
    pub allow: Vec<IpNet>,
    /// New calls (initial INVITEs) per second allowed from one source address; 0 = no limit.
    pub max_calls_per_second: u32,
    /// How many calls above the rate a source may send at once.
    pub burst: u32,
}

impl Default for DialersConfig {
    fn default() -> Self {
        DialersConfig {
            allow: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            max_calls_per_second: 0,
            burst: 100,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NumbersConfig {
    pub strip_prefixes: Vec<String>,
    pub service_codes: Vec<String>,
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
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Fail closed: reject the call.
    Reject,
    /// Fail open: forward the call, record the reason.
    Allow,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    pub on_unparseable_number: FailMode,
    pub on_stale_national_list: FailMode,
    pub on_unavailable_list: FailMode,
    /// Any other list with a download date older than its `max_age_days`.
    pub on_stale_list: FailMode,
    pub national_max_age_days: u32,
    /// The compliance rules (`config/rules.toml`) and the holiday calendars, one file a year.
    pub rules: PathBuf,
    pub holidays_dir: PathBuf,
    /// A +1 number whose area code has no known place (a marketing call cannot be timed).
    pub on_unknown_location: FailMode,
    /// A rule about wireless numbers applies but no list of kind "wireless" is loaded.
    pub on_unknown_line_type: FailMode,
    /// A rule with a holiday window applies in a year no calendar file covers.
    pub on_missing_calendar: FailMode,
    /// Add `Retry-After` (seconds until the calling window opens) to outside-hours rejections.
    pub retry_after_hours: bool,
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
            on_unknown_line_type: FailMode::Reject,
            on_missing_calendar: FailMode::Reject,
            retry_after_hours: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RejectConfig {
    pub status: u16,
    pub reason_phrase: String,
    pub q850_cause: u16,
    pub reason_header: bool,
    pub warning_header: bool,
    /// Per reason code: a different status (e.g. `unparseable_number = 484`).
    pub status_by_reason: std::collections::BTreeMap<String, u16>,
}

impl RejectConfig {
    /// The status a block with this primary reason is answered with.
    pub fn status_for(&self, primary: Option<crate::policy::Reason>) -> u16 {
        let code = primary.map(|r| r.code()).unwrap_or("");
        self.status_by_reason
            .get(code)
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListsConfig {
    pub data_dir: PathBuf,
    pub manifest: String,
    pub optout_journal: PathBuf,
    /// Consent / EBR / address records: append-only, fsynced before the API answers.
    pub consent_journal: PathBuf,
    /// Frequency-cap counters.
    pub caps_journal: PathBuf,
    /// State-of-emergency closures set through the API.
    pub emergency_file: PathBuf,
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
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    pub dir: PathBuf,
    pub queue_capacity: usize,
    pub flush_interval_ms: u64,
    /// "async": records are fsynced within `flush_interval_ms`, calls do not wait.
    /// "before-forward": an allowed INVITE is forwarded only once its record is on disk
    /// (group commit: one fsync covers every record that arrived meanwhile).
    pub durability: Durability,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
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
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    pub token: Option<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: "127.0.0.1:8080".parse().unwrap(),
            token: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
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
pub fn parse_toml<T: serde::de::DeserializeOwned>(file: &str, src: &str) -> Result<T, ConfigError> {
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
    let mut table = String::new();
    for l in before[..line_start].lines().rev() {
        let t = l.trim();
        if t.starts_with('[') {
            table = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            break;
        }
    }
    let key = match this_line.split_once('=') {
        Some((k, _)) if !this_line.trim_start().starts_with('[') => {
            k.trim().trim_matches('"').to_string()
        }
        _ => String::new(),
    };
    let path = match (table.is_empty(), key.is_empty()) {
        (true, _) => key,
        (false, true) => table,
        (false, false) => format!("{table}.{key}"),
    };
    (line, column, path)
}

/// An error about `key` (dotted; its last part is searched for as `leaf =`), located at the
/// first such line after `anchor` (e.g. `id = "X"` for one entry of an array of tables).
pub fn error_at_key(
    file: &str,
    src: &str,
    anchor: Option<&str>,
    key: &str,
    message: String,
) -> ConfigError {
    let leaf = key.rsplit('.').next().unwrap_or(key);
    let base = anchor.and_then(|a| src.find(a)).unwrap_or(0);
    let rest = &src[base..];
    let offset = base
        + rest
            .find(&format!("{leaf} ="))
            .or_else(|| rest.find(leaf))
            .unwrap_or(0);
    let (line, column, _) = locate(src, offset);
    ConfigError::Invalid {
        file: file.into(),
        line,
        column,
        key: key.into(),
        message,
    }
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
                    format!("{reason} = {status} is not 300-699"),
                );
            }
        }
        if self.upstream.address.trim().is_empty() {
            return fail("upstream.address", "must be host:port".into());
        }
        if let Some(why) = self.admin_exposure_error() {
            return fail("admin.listen", why);
        }
        if self.policy.national_max_age_days == 0 {
            return fail("policy.national_max_age_days", "must be at least 1".into());
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
        Ok(())
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
    /// An admin API reachable from the network must have a token. Checked at load and again
    /// after command-line overrides.
    pub fn admin_exposure_error(&self) -> Option<String> {
        (!self.admin.listen.ip().is_loopback() && self.admin_token().is_none()).then(|| {
            format!(
                "{} is not a loopback address: set admin.token (or CALLGATE_ADMIN_TOKEN) so the API is not open",
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
    fn reject_status_must_be_an_error() {
        let e = Config::from_str_named("x.toml", "[reject]\nstatus = 200\n").unwrap_err();
        assert!(e.to_string().contains("x.toml:2:"), "{e}");
    }
}
