//! Consent and EBR records (and known addresses) per number: imported from CSV or posted to the
//! admin API, journaled and fsynced before they are acknowledged, replayed at start.

use super::rules::{ConsentDefaults, ConsentKind};
use crate::number::geo::{State, Zone};
use crate::number::E164;
use chrono::{DateTime, Months, NaiveDate, Utc};
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One record as imported (a CSV row or a JSON object).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConsentInput {
    pub number: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seller: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// YYYY-MM-DD: when consent was given, or the purchase / inquiry date.
    pub captured: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// `type = "rnd"`: the database's answer, `yes` (permanently disconnected since the date
    /// asked about, `captured`), `no` or `no_data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// `type = "rnd"`: YYYY-MM-DD, when the database was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queried: Option<String>,
}

/// What the Reassigned Numbers Database answered for a number and a date (47 CFR 64.1200(m)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RndAnswer {
    /// Permanently disconnected since the date asked about.
    Yes,
    No,
    NoData,
}

/// An RND answer as recorded.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Rnd {
    pub answer: RndAnswer,
    pub queried: NaiveDate,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConsentRecord {
    pub seq: u64,
    pub number: E164,
    #[serde(rename = "type")]
    pub kind: ConsentKind,
    pub seller: Option<String>,
    pub campaign: Option<String>,
    pub captured: NaiveDate,
    /// As given; EBRs without one expire per `[consent]` in the rules.
    pub expires: Option<NaiveDate>,
    pub evidence: Option<String>,
    pub address_state: Option<State>,
    pub time_zone: Option<Zone>,
    /// `type = "rnd"`: the answer (its `captured` is the date asked about).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rnd: Option<Rnd>,
    /// The change of the shared database it came in (None: entered on this instance alone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared: Option<u64>,
}

impl ConsentRecord {
    /// The first day the record no longer covers (None: until revoked).
    pub fn expiry(&self, d: &ConsentDefaults) -> Option<NaiveDate> {
        self.expires.or(match self.kind {
            ConsentKind::EbrPurchase => self
                .captured
                .checked_add_months(Months::new(d.ebr_purchase_months)),
            ConsentKind::EbrInquiry => self
                .captured
                .checked_add_months(Months::new(d.ebr_inquiry_months)),
            _ => None,
        })
    }

    /// In force on `day` for this seller / campaign.
    pub(crate) fn covers(
        &self,
        day: NaiveDate,
        seller: Option<&str>,
        campaign: &str,
        d: &ConsentDefaults,
    ) -> bool {
        self.kind.is_consent()
            && self.captured <= day
            && self.expiry(d).is_none_or(|e| day < e)
            && self.campaign.as_deref().is_none_or(|c| c == campaign)
            && match (self.seller.as_deref(), seller) {
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                (Some(_), None) => false,
                (None, _) => true,
            }
    }
}

#[derive(Serialize, Deserialize)]
struct JournalLine {
    seq: u64,
    at: DateTime<Utc>,
    /// A record learnt from the shared database: the change it came in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shared: Option<u64>,
    #[serde(flatten)]
    rec: ConsentInput,
}

pub type Records = Arc<[Arc<ConsentRecord>]>;

pub struct ConsentStore {
    map: DashMap<E164, Records>,
    journal: Mutex<Option<File>>,
    seq: AtomicU64,
    /// The newest change from the shared database this journal holds.
    shared_seq: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
#[error("{where_}: {message}")]
pub struct ConsentError {
    pub where_: String,
    pub message: String,
}

impl ConsentInput {
    pub(crate) fn validate(&self, seq: u64) -> Result<ConsentRecord, String> {
        let number: E164 = self
            .number
            .trim()
            .parse()
            .map_err(|e| format!("number `{}`: {e}", self.number))?;
        let kind = ConsentKind::parse(&self.kind).ok_or_else(|| {
            format!(
                "type `{}` is not pewc, ebr_purchase, ebr_inquiry, pec, address or rnd",
                self.kind
            )
        })?;
        let date = |what: &str, s: &str| {
            NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                .map_err(|_| format!("{what} `{s}` is not YYYY-MM-DD"))
        };
        let opt = |s: &Option<String>| {
            s.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let address_state = match opt(&self.address_state) {
            Some(s) => Some(
                State::parse(&s).ok_or_else(|| format!("address_state `{s}` is not a US state"))?,
            ),
            None => None,
        };
        let time_zone = match opt(&self.time_zone) {
            Some(z) => Some(
                Zone::from_iana(&z)
                    .ok_or_else(|| format!("time_zone `{z}` is not an IANA zone callgate knows (North American or a country policy's)"))?,
            ),
            None => None,
        };
        if kind == ConsentKind::Address && address_state.is_none() && time_zone.is_none() {
            return Err("type address needs address_state or time_zone".into());
        }
        let captured = date("captured", &self.captured)?;
        let rnd = self.rnd(kind, captured, &date)?;
        Ok(ConsentRecord {
            seq,
            number,
            kind,
            seller: opt(&self.seller),
            campaign: opt(&self.campaign),
            captured,
            expires: opt(&self.expires)
                .map(|e| date("expires", &e))
                .transpose()?,
            evidence: opt(&self.evidence),
            address_state,
            time_zone,
            rnd,
            shared: None,
        })
    }

    /// An RND answer's `answer` and `queried` (asked on or after the date asked about), and
    /// neither on any other record.
    fn rnd(
        &self,
        kind: ConsentKind,
        captured: NaiveDate,
        date: &dyn Fn(&str, &str) -> Result<NaiveDate, String>,
    ) -> Result<Option<Rnd>, String> {
        fn given(s: &Option<String>) -> Option<&str> {
            s.as_deref().map(str::trim).filter(|s| !s.is_empty())
        }
        let (answer, queried) = (given(&self.answer), given(&self.queried));
        if kind != ConsentKind::Rnd {
            return match answer.or(queried) {
                Some(_) => Err("answer and queried belong to type rnd only".into()),
                None => Ok(None),
            };
        }
        let answer = match answer.map(str::to_ascii_lowercase).as_deref() {
            Some("yes") => RndAnswer::Yes,
            Some("no") => RndAnswer::No,
            Some("no_data" | "no data") => RndAnswer::NoData,
            Some(a) => return Err(format!("answer `{a}` is not yes, no or no_data")),
            None => return Err("type rnd needs answer (yes, no or no_data)".into()),
        };
        let queried = date(
            "queried",
            queried.ok_or("type rnd needs queried (YYYY-MM-DD)")?,
        )?;
        if queried < captured {
            let why = format!("queried {queried} is before the date asked about ({captured})");
            return Err(why);
        }
        Ok(Some(Rnd { answer, queried }))
    }
}

impl ConsentRecord {
    /// This RND answer says the number was permanently disconnected after a consent
    /// `captured` that day: it was asked about that day or a later one and answered yes.
    pub(crate) fn disconnected_since(&self, captured: NaiveDate) -> bool {
        self.rnd.is_some_and(|r| r.answer == RndAnswer::Yes) && self.captured >= captured
    }
}

/// CSV with a header naming any of the `ConsentInput` fields (`number`, `type`, `captured`
/// required). The whole file is refused if any row is bad, naming the line.
pub(crate) fn parse_csv(name: &str, text: &str) -> Result<Vec<ConsentInput>, ConsentError> {
    let err = |line: usize, message: String| ConsentError {
        where_: format!("{name}:{line}"),
        message,
    };
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
    let Some((hl, header)) = lines.next() else {
        return Ok(vec![]);
    };
    let cols: Vec<String> = header
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    const KNOWN: [&str; 11] = [
        "number",
        "type",
        "seller",
        "campaign",
        "captured",
        "expires",
        "evidence",
        "address_state",
        "time_zone",
        "answer",
        "queried",
    ];
    for c in &cols {
        if !KNOWN.contains(&c.as_str()) {
            return Err(err(
                hl + 1,
                format!("unknown column `{c}` (known: {})", KNOWN.join(", ")),
            ));
        }
    }
    for req in ["number", "type", "captured"] {
        if !cols.iter().any(|c| c == req) {
            return Err(err(hl + 1, format!("missing column `{req}`")));
        }
    }
    let mut out = Vec::new();
    for (i, l) in lines {
        let f: Vec<&str> = l.split(',').map(|s| s.trim().trim_matches('"')).collect();
        if f.len() != cols.len() {
            return Err(err(
                i + 1,
                format!("{} fields, the header has {}", f.len(), cols.len()),
            ));
        }
        let get = |name: &str| {
            cols.iter()
                .position(|c| c == name)
                .map(|p| f[p].to_string())
                .filter(|s| !s.is_empty())
        };
        let rec = ConsentInput {
            number: get("number").unwrap_or_default(),
            kind: get("type").unwrap_or_default(),
            seller: get("seller"),
            campaign: get("campaign"),
            captured: get("captured").unwrap_or_default(),
            expires: get("expires"),
            evidence: get("evidence"),
            address_state: get("address_state"),
            time_zone: get("time_zone"),
            answer: get("answer"),
            queried: get("queried"),
        };
        rec.validate(0).map_err(|m| err(i + 1, m))?;
        out.push(rec);
    }
    Ok(out)
}

impl ConsentStore {
    pub fn in_memory() -> ConsentStore {
        ConsentStore {
            map: DashMap::new(),
            journal: Mutex::new(None),
            seq: AtomicU64::new(0),
            shared_seq: AtomicU64::new(0),
        }
    }

    /// Open (creating) the journal and replay it; a torn final line (never acknowledged) is cut,
    /// any other bad line stops the start (an acknowledged record must not vanish silently).
    pub fn open(path: &Path) -> anyhow::Result<ConsentStore> {
        let store = ConsentStore::in_memory();
        let mut recs = Vec::new();
        let file = crate::journal::open_replay(path, "consent", |j: JournalLine, _| {
            let mut rec = j.rec.validate(j.seq).map_err(anyhow::Error::msg)?;
            rec.shared = j.shared;
            store.seq.fetch_max(j.seq, Ordering::AcqRel);
            store
                .shared_seq
                .fetch_max(j.shared.unwrap_or(0), Ordering::AcqRel);
            recs.push(rec);
            Ok(())
        })?;
        store.publish(recs);
        *store.journal.lock().unwrap() = Some(file);
        tracing::info!(file = %path.display(), numbers = store.map.len(), "consent journal replayed");
        Ok(store)
    }

    /// Replay a journal without writing to it (`callgate check` beside a running daemon).
    pub fn open_read_only(path: &Path) -> anyhow::Result<ConsentStore> {
        let store = ConsentStore::in_memory();
        let Ok(f) = File::open(path) else {
            return Ok(store);
        };
        let mut recs = Vec::new();
        for (i, line) in BufReader::new(f).lines().enumerate() {
            let line = line?;
            let Ok(j) = serde_json::from_str::<JournalLine>(&line) else {
                break; // a torn tail: the daemon cuts it at its next start
            };
            let rec = j
                .rec
                .validate(j.seq)
                .map_err(|m| anyhow::anyhow!("{}:{}: {m}", path.display(), i + 1))?;
            store.seq.fetch_max(j.seq, Ordering::AcqRel);
            recs.push(rec);
        }
        store.publish(recs);
        Ok(store)
    }

    fn publish(&self, recs: Vec<ConsentRecord>) {
        let mut by_number: std::collections::HashMap<E164, Vec<Arc<ConsentRecord>>> =
            Default::default();
        for r in recs {
            by_number.entry(r.number).or_default().push(Arc::new(r));
        }
        for (n, new) in by_number {
            let mut all: Vec<Arc<ConsentRecord>> =
                self.map.get(&n).map(|r| r.to_vec()).unwrap_or_default();
            all.extend(new);
            self.map.insert(n, all.into());
        }
    }

    /// Validate every record, append them, fsync once, then publish. All or nothing.
    /// Blocking (the fsync).
    pub fn add(
        &self,
        inputs: Vec<ConsentInput>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Arc<ConsentRecord>>, ConsentError> {
        self.write(inputs, now, None)
    }

    /// `add` for a change read from the shared database (`shared`, its place there); nothing
    /// when this store holds that change already.
    pub fn add_shared(
        &self,
        inputs: Vec<ConsentInput>,
        at: DateTime<Utc>,
        shared: u64,
    ) -> Result<Vec<Arc<ConsentRecord>>, ConsentError> {
        self.write(inputs, at, Some(shared))
    }

    /// The newest change from the shared database this store holds (0: none).
    pub fn shared_seq(&self) -> u64 {
        self.shared_seq.load(Ordering::Acquire)
    }

    /// Every one of `inputs` valid, or an error naming the first that is not (nothing is
    /// written): checked before a change goes to the shared database.
    pub fn check(inputs: &[ConsentInput]) -> Result<(), ConsentError> {
        for (i, input) in inputs.iter().enumerate() {
            input.validate(0).map_err(|m| ConsentError {
                where_: format!("record {}", i + 1),
                message: m,
            })?;
        }
        Ok(())
    }

    fn write(
        &self,
        inputs: Vec<ConsentInput>,
        now: DateTime<Utc>,
        shared: Option<u64>,
    ) -> Result<Vec<Arc<ConsentRecord>>, ConsentError> {
        let mut j = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        // Read under the lock: a shared change this store holds already is not written again.
        if shared.is_some_and(|s| s <= self.shared_seq()) {
            return Ok(vec![]);
        }
        let base = self.seq.load(Ordering::Acquire);
        let mut recs = Vec::with_capacity(inputs.len());
        let mut buf = Vec::new();
        for (i, input) in inputs.into_iter().enumerate() {
            let seq = base + 1 + i as u64;
            let mut rec = input.validate(seq).map_err(|m| ConsentError {
                where_: format!("record {}", i + 1),
                message: m,
            })?;
            rec.shared = shared;
            serde_json::to_writer(
                &mut buf,
                &JournalLine {
                    seq,
                    at: now,
                    shared,
                    rec: input,
                },
            )
            .expect("serializable");
            buf.push(b'\n');
            recs.push(rec);
        }
        if let Some(f) = j.as_mut() {
            f.write_all(&buf)
                .and_then(|_| f.sync_data())
                .map_err(|e| ConsentError {
                    where_: "consent journal".into(),
                    message: e.to_string(),
                })?;
        }
        let numbers: Vec<E164> = recs.iter().map(|r| r.number).collect();
        self.seq.store(base + recs.len() as u64, Ordering::Release);
        if let Some(s) = shared {
            self.shared_seq.fetch_max(s, Ordering::AcqRel);
        }
        self.publish(recs);
        Ok(numbers
            .iter()
            .filter_map(|n| self.map.get(n).and_then(|r| r.last().cloned()))
            .collect())
    }

    /// Every record for a number (newest last). Clones an `Arc`; no allocation.
    #[inline]
    pub fn get(&self, n: E164) -> Option<Records> {
        if self.seq.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.map.get(&n).map(|r| r.clone())
    }

    /// Version of the consent data: the latest record's sequence number.
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    pub fn numbers(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(n: &str, kind: &str, captured: &str) -> ConsentInput {
        ConsentInput {
            number: n.into(),
            kind: kind.into(),
            seller: None,
            campaign: None,
            captured: captured.into(),
            expires: None,
            evidence: Some("form-123".into()),
            address_state: None,
            time_zone: None,
            answer: None,
            queried: None,
        }
    }

    #[test]
    fn an_rnd_answer_needs_its_answer_and_a_query_date_after_the_date_asked_about() {
        let rnd = |answer: Option<&str>, queried: Option<&str>| ConsentInput {
            answer: answer.map(String::from),
            queried: queried.map(String::from),
            ..input("+12125550143", "rnd", "2026-01-01")
        };
        let ok = rnd(Some("yes"), Some("2026-02-01")).validate(1).unwrap();
        assert!(ok.disconnected_since(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()));
        assert!(!ok.disconnected_since(NaiveDate::from_ymd_opt(2026, 1, 2).unwrap()));
        assert!(
            !ok.covers(
                NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
                None,
                "c",
                &ConsentDefaults {
                    ebr_purchase_months: 18,
                    ebr_inquiry_months: 3,
                    registry_exemptions: crate::policy::rules::Bits(0b111),
                    source: String::new(),
                }
            ),
            "an answer is not a consent"
        );
        let no = rnd(Some("no"), Some("2026-02-01")).validate(1).unwrap();
        assert!(!no.disconnected_since(NaiveDate::from_ymd_opt(2025, 1, 1).unwrap()));
        for (bad, why) in [
            (rnd(None, Some("2026-02-01")), "answer"),
            (rnd(Some("maybe"), Some("2026-02-01")), "answer"),
            (rnd(Some("yes"), None), "queried"),
            (rnd(Some("yes"), Some("2025-12-31")), "before"),
        ] {
            let e = bad.validate(1).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        let pewc = ConsentInput {
            answer: Some("yes".into()),
            ..input("+12125550143", "pewc", "2026-01-01")
        };
        assert!(pewc.validate(1).unwrap_err().contains("rnd"));
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("consent.jsonl");
        let s = ConsentStore::open(&p).unwrap();
        s.add(
            vec![input("+12125550100", "pewc", "2026-01-02")],
            Utc::now(),
        )
        .unwrap();
        drop(s);
        let s = ConsentStore::open(&p).unwrap();
        let r = s.get("+12125550100".parse().unwrap()).unwrap();
        assert_eq!(r[0].kind, ConsentKind::Pewc);
        assert_eq!(s.seq(), 1);
    }

    #[test]
    fn a_bad_record_refuses_the_whole_batch() {
        let s = ConsentStore::in_memory();
        let e = s
            .add(
                vec![
                    input("+12125550100", "pewc", "2026-01-02"),
                    input("+12125550101", "maybe", "2026-01-02"),
                ],
                Utc::now(),
            )
            .unwrap_err();
        assert!(e.to_string().contains("record 2"), "{e}");
        assert!(s.get("+12125550100".parse().unwrap()).is_none());
    }

    #[test]
    fn csv_errors_name_the_line() {
        let e = parse_csv(
            "c.csv",
            "number,type,captured\n+12125550100,pewc,2026-01-01\n+12125550101,pewc,yesterday\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("c.csv:3:"), "{e}");
    }

    #[test]
    fn ebr_expires_by_calendar_months() {
        let d = ConsentDefaults {
            ebr_purchase_months: 18,
            ebr_inquiry_months: 3,
            registry_exemptions: super::super::rules::Bits(7),
            source: String::new(),
        };
        let r = input("+12125550100", "ebr_purchase", "2025-01-15")
            .validate(1)
            .unwrap();
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert!(r.covers(day("2026-07-14"), None, "c", &d));
        assert!(!r.covers(day("2026-07-15"), None, "c", &d));
    }
}
