//! The log of changes in the shared database: each written in one transaction with its
//! sequence number, read back in that order by every instance.

use super::SharedError;
use crate::policy::consent::ConsentInput;
use crate::policy::emergency::Closed;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::Client;

/// Held by a writer from giving out sequence numbers to its commit: sequence numbers are in
/// commit order, so a reader that has seen `n` has seen everything below it.
const CHANGES_LOCK: i64 = 0x6361_6c6c_6761_7402;

/// Told to every listening instance on commit.
pub(crate) const CHANNEL: &str = "callgate_changes";

/// The most changes one fetch reads (the follower fetches again until it has all): a change
/// may be a whole upload of several MiB, so a fetch's memory is bounded by few of them.
pub(crate) const FETCH_ROWS: i64 = 64;

/// One opt-out of a batch.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OptOutEntry {
    pub number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// When it was taken, where that is before the change (an opt-out an instance held before
    /// it joined the cluster); otherwise the change's own time. An older callgate ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
}

/// A change to the state every instance shares: all of a batch or none.
#[derive(Clone, Debug)]
pub enum Change {
    OptOuts(Vec<OptOutEntry>),
    Consent(Vec<ConsentInput>),
    /// The closures in force from now on (they replace the previous ones).
    Emergency(Closed),
}

impl Change {
    fn kind(&self) -> &'static str {
        match self {
            Change::OptOuts(_) => "optouts",
            Change::Consent(_) => "consent",
            Change::Emergency(_) => "emergency",
        }
    }

    fn body(&self) -> Result<Value, serde_json::Error> {
        match self {
            Change::OptOuts(o) => serde_json::to_value(o),
            Change::Consent(c) => serde_json::to_value(c),
            Change::Emergency(e) => serde_json::to_value(e),
        }
    }

    fn parse(kind: &str, body: Value) -> Result<Change, String> {
        let e = |e: serde_json::Error| e.to_string();
        match kind {
            "optouts" => serde_json::from_value(body).map(Change::OptOuts).map_err(e),
            "consent" => serde_json::from_value(body).map(Change::Consent).map_err(e),
            "emergency" => serde_json::from_value(body)
                .map(Change::Emergency)
                .map_err(e),
            other => Err(format!("kind `{other}` is not one this callgate knows")),
        }
    }
}

/// A change as the database holds it.
#[derive(Clone, Debug)]
pub struct Row {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub change: Change,
}

/// The time of change `seq` (None: the database holds no such change).
pub(crate) async fn at_of(client: &Client, seq: u64) -> Result<Option<DateTime<Utc>>, SharedError> {
    let row = client
        .query_opt(
            "SELECT at FROM callgate_changes WHERE seq = $1",
            &[&(seq as i64)],
        )
        .await?;
    row.map(|r| r.try_get(0))
        .transpose()
        .map_err(SharedError::from)
}

/// Record `change`, stamped `at`: its sequence number once committed.
pub(crate) async fn insert(
    client: &mut Client,
    change: &Change,
    at: DateTime<Utc>,
    who: &str,
    instance: &str,
) -> Result<u64, SharedError> {
    let body = change
        .body()
        .map_err(|e| SharedError::BadRow(e.to_string()))?;
    // Read committed whatever the database's default: the insert's snapshot must be taken
    // after the lock is granted, so it sees the previous writer's row.
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
        .start()
        .await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CHANGES_LOCK])
        .await?;
    let seq: i64 = tx
        .query_one(
            "INSERT INTO callgate_changes (seq, kind, body, at, who, instance)
             SELECT coalesce(max(seq), 0) + 1, $1, $2, $3, $4, $5 FROM callgate_changes
             RETURNING seq",
            &[&change.kind(), &body, &at, &who, &instance],
        )
        .await?
        .get(0);
    tx.execute(&format!("NOTIFY {CHANNEL}"), &[]).await?;
    tx.commit().await?;
    Ok(seq as u64)
}

/// The newest change's seq (0: none yet).
pub(crate) async fn newest(client: &Client) -> Result<u64, SharedError> {
    let newest: i64 = client
        .query_one("SELECT coalesce(max(seq), 0) FROM callgate_changes", &[])
        .await?
        .try_get(0)?;
    Ok(u64::try_from(newest).unwrap_or(0))
}

/// The changes after `seq`, in order, at most `FETCH_ROWS`.
pub(crate) async fn after(client: &Client, seq: u64) -> Result<Vec<Row>, SharedError> {
    let rows = client
        .query(
            "SELECT seq, kind, body, at FROM callgate_changes
             WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&(seq as i64), &FETCH_ROWS],
        )
        .await?;
    rows.iter().map(row).collect()
}

/// One row as a change; what this callgate cannot read is an error naming it (the follower
/// stops there, and the instance goes stale, rather than skip a change).
fn row(r: &tokio_postgres::Row) -> Result<Row, SharedError> {
    let bad = |what: String| SharedError::BadRow(what);
    let seq: i64 = r
        .try_get(0)
        .map_err(|e| bad(format!("a change's seq: {e}")))?;
    let seq = u64::try_from(seq).map_err(|_| bad(format!("change {seq}: a negative seq")))?;
    let field = |e: tokio_postgres::Error| bad(format!("change {seq}: {e}"));
    let kind: String = r.try_get(1).map_err(field)?;
    let change = Change::parse(&kind, r.try_get(2).map_err(field)?)
        .map_err(|e| bad(format!("change {seq}: {e}")))?;
    Ok(Row {
        seq,
        at: r.try_get(3).map_err(field)?,
        change,
    })
}
