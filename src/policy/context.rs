//! Who is calling and what kind of call it is: the campaign (from the dialer's source address
//! or the `X-Callgate-Campaign` header), its purpose and method (campaign default, or the
//! `X-Callgate-Call-Type` header within what the campaign allows), and the caller ID presented.

use super::rules::Bits;
use super::Reason;
use crate::call::{CallMethod, CallType, Purpose};
use crate::config::{CampaignConfig, CampaignsConfig, ConfigError};
use crate::number::E164;
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::Arc;

#[derive(Debug)]
pub struct Campaign {
    pub id: Arc<str>,
    pub seller: Option<String>,
    /// Frequency caps "per subject" count per (number, subject).
    pub subject: String,
    pub subject_key: u64,
    pub purpose: Purpose,
    pub method: CallMethod,
    pub allowed_purposes: Bits,
    pub allowed_methods: Bits,
    /// Evaluate and record everything, forward anyway ("would_block").
    pub shadow: bool,
    /// Caller IDs this campaign may present (sorted by number); empty: any number.
    pub caller_ids: Vec<CallerIdGrant>,
    pub require_caller_id: bool,
    pub sources: Vec<IpNet>,
    /// Stop marketing calls while the 30-day abandonment rate is above this (0.03 = 3%), once
    /// `abandonment_min_answered` calls were answered in the window.
    pub max_abandonment_rate: Option<f64>,
    pub abandonment_min_answered: u64,
    /// Kept in each call record: consumers or businesses, and the script used.
    pub audience: crate::call::Audience,
    pub script: Option<String>,
}

/// A caller ID a campaign may present, when, and on what evidence.
#[derive(Debug, Clone)]
pub struct CallerIdGrant {
    pub number: E164,
    pub from: Option<chrono::NaiveDate>,
    pub to: Option<chrono::NaiveDate>,
    pub evidence: Option<Arc<str>>,
}

impl CallerIdGrant {
    fn from_config(entry: &crate::config::CallerIdEntry) -> Result<CallerIdGrant, String> {
        use crate::config::CallerIdEntry;
        let (number, from, to, evidence) = match entry {
            CallerIdEntry::Number(n) => (n, None, None, None),
            CallerIdEntry::Authorized(a) => (
                &a.number,
                a.authorized_from.as_deref(),
                a.authorized_to.as_deref(),
                a.evidence.as_deref(),
            ),
        };
        let day = |d: Option<&str>, key: &str| {
            d.map(|d| {
                chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d")
                    .map_err(|_| format!("{key} `{d}` of `{number}`: expected YYYY-MM-DD"))
            })
            .transpose()
        };
        let grant = CallerIdGrant {
            number: number
                .parse::<E164>()
                .map_err(|e| format!("`{number}`: {e}"))?,
            from: day(from, "authorized_from")?,
            to: day(to, "authorized_to")?,
            evidence: evidence.map(Into::into),
        };
        if let (Some(f), Some(t)) = (grant.from, grant.to) {
            if t < f {
                return Err(format!(
                    "`{number}`: authorized_to {t} is before authorized_from {f}"
                ));
            }
        }
        Ok(grant)
    }

    /// Whether the number may be presented on `day` (UTC).
    pub fn covers(&self, day: chrono::NaiveDate) -> bool {
        self.from.is_none_or(|f| day >= f) && self.to.is_none_or(|t| day <= t)
    }
}

impl Campaign {
    /// The grant of a caller ID this campaign lists.
    pub fn caller_id_grant(&self, n: E164) -> Option<&CallerIdGrant> {
        self.caller_ids
            .binary_search_by_key(&n, |g| g.number)
            .ok()
            .map(|i| &self.caller_ids[i])
    }
}

/// The caller ID an INVITE presents (P-Asserted-Identity, else From).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallerId {
    Number(E164),
    /// "anonymous", or withheld with `Privacy: id`.
    Anonymous,
    /// No usable number in the URI.
    Missing,
}

impl CallerId {
    pub(crate) fn describe(&self) -> String {
        match self {
            CallerId::Number(n) if n.as_u64() == 0 => "(any number; not given)".into(),
            CallerId::Number(n) => n.to_string(),
            CallerId::Anonymous => "anonymous".into(),
            CallerId::Missing => "missing".into(),
        }
    }
}

/// Everything the policy needs to know about a call besides the called number.
#[derive(Clone, Debug)]
pub struct CallContext {
    pub campaign: Arc<Campaign>,
    pub purpose: Purpose,
    pub method: CallMethod,
    pub caller_id: CallerId,
    /// Set when the classification itself failed (unknown campaign, call type not allowed).
    pub problem: Option<Reason>,
}

pub struct Campaigns {
    list: Vec<Arc<Campaign>>,
    default: usize,
    pub campaign_header: String,
    pub call_type_header: String,
}

impl Campaigns {
    pub(crate) fn from_config(
        file: &str,
        src: &str,
        cfg: &CampaignsConfig,
        list: &[CampaignConfig],
    ) -> Result<Campaigns, ConfigError> {
        let mut out = Vec::new();
        let implicit = [CampaignConfig::default()];
        let list = if list.is_empty() { &implicit[..] } else { list };
        for c in list {
            let anchor = format!("id = \"{}\"", c.id);
            let fail = |key: &str, m: String| {
                crate::config::error_at_key(file, src, Some(&anchor), key, m)
            };
            if c.id.is_empty() || out.iter().any(|o: &Arc<Campaign>| *o.id == *c.id) {
                return Err(fail(
                    "campaign.id",
                    "campaign ids must be unique and not empty".into(),
                ));
            }
            let (purpose, method) = (c.purpose, c.method);
            let (mut ap, mut am) = (Bits(0).with(purpose as u8), Bits(0).with(method as u8));
            for t in &c.allowed_call_types {
                match *t {
                    CallType::Purpose(p) => ap = ap.with(p as u8),
                    CallType::Method(m) => am = am.with(m as u8),
                }
            }
            let mut caller_ids = Vec::new();
            for entry in &c.caller_ids {
                caller_ids.push(
                    CallerIdGrant::from_config(entry)
                        .map_err(|e| fail("campaign.caller_ids", e))?,
                );
            }
            caller_ids.sort_by_key(|g| g.number);
            let subject = c.subject.clone().unwrap_or_else(|| c.id.clone());
            out.push(Arc::new(Campaign {
                id: c.id.as_str().into(),
                seller: c.seller.clone(),
                subject_key: crate::hashing::mix(fnv(subject.as_bytes())) | 1,
                subject,
                purpose,
                method,
                allowed_purposes: ap,
                allowed_methods: am,
                shadow: c.shadow,
                caller_ids,
                require_caller_id: c.require_caller_id,
                sources: c.sources.clone(),
                audience: c.audience,
                script: c.script.clone(),
                max_abandonment_rate: c.max_abandonment_rate,
                abandonment_min_answered: c.abandonment_min_answered,
            }));
        }
        let default = out
            .iter()
            .position(|c| *c.id == *cfg.default)
            .ok_or_else(|| {
                crate::config::error_at_key(
                    file,
                    src,
                    None,
                    "campaigns.default",
                    format!("no [[campaign]] with id `{}`", cfg.default),
                )
            })?;
        Ok(Campaigns {
            list: out,
            default,
            campaign_header: cfg.campaign_header.clone(),
            call_type_header: cfg.call_type_header.clone(),
        })
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Campaign>> {
        self.list.iter().find(|c| &*c.id == id)
    }

    pub(crate) fn default_campaign(&self) -> &Arc<Campaign> {
        &self.list[self.default]
    }

    /// Classify a call: campaign from the header, else the first campaign listing the source,
    /// else the default; the call type from the header within what the campaign allows.
    pub fn classify(
        &self,
        source: Option<IpAddr>,
        campaign_header: Option<&[u8]>,
        call_type_header: Option<&[u8]>,
        caller_id: CallerId,
    ) -> CallContext {
        let mut problem = None;
        let campaign = match campaign_header.map(|h| std::str::from_utf8(h).unwrap_or("").trim()) {
            Some(id) if !id.is_empty() => match self.get(id) {
                Some(c) => c.clone(),
                None => {
                    problem = Some(Reason::UnknownCampaign);
                    self.default_campaign().clone()
                }
            },
            _ => source
                .and_then(|ip| {
                    self.list
                        .iter()
                        .find(|c| c.sources.iter().any(|n| n.contains(&ip)))
                })
                .unwrap_or(self.default_campaign())
                .clone(),
        };
        let (mut purpose, mut method) = (campaign.purpose, campaign.method);
        if let Some(h) = call_type_header {
            for tok in std::str::from_utf8(h)
                .unwrap_or("?")
                .split([',', ' ', ';'])
                .filter(|t| !t.is_empty())
            {
                match (Purpose::parse(tok), CallMethod::parse(tok)) {
                    (Some(p), _) if campaign.allowed_purposes.has(p as u8) => purpose = p,
                    (_, Some(m)) if campaign.allowed_methods.has(m as u8) => method = m,
                    _ => problem = problem.or(Some(Reason::CallTypeNotAllowed)),
                }
            }
        }
        CallContext {
            campaign,
            purpose,
            method,
            caller_id,
            problem,
        }
    }
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325u64, |h, c| {
        (h ^ *c as u64).wrapping_mul(0x100000001b3)
    })
}
