//! Opt-outs in the shared database: written in one transaction with their sequence numbers,
//! read back in that order by every instance.

use super::SharedError;
use crate::lists::optouts::SharedOptOut;
use crate::number::E164;
use chrono::{DateTime, Utc};
use tokio_postgres::Client;

/// Held by a writer from giving out sequence numbers to its commit: sequence numbers are in
/// commit order, so a reader that has seen `n` has seen everything below it.
const OPTOUTS_LOCK: i64 = 0x6361_6c6c_6761_7402;

/// Told to every listening instance on commit.
pub(crate) const CHANNEL: &str = "callgate_optouts";

/// The most rows one fetch reads; the follower fetches again until it has all.
pub(crate) const FETCH_ROWS: i64 = 10_000;

/// Record `entries` (all or none), stamped `at`; their sequence numbers once committed.
pub(crate) async fn insert(
    client: &mut Client,
    entries: &[(E164, Option<String>)],
    at: DateTime<Utc>,
    who: &str,
    instance: &str,
) -> Result<Vec<u64>, SharedError> {
    let numbers: Vec<String> = entries.iter().map(|(n, _)| n.to_string()).collect();
    let sources: Vec<Option<String>> = entries.iter().map(|(_, s)| s.clone()).collect();
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&OPTOUTS_LOCK])
        .await?;
    let last: i64 = tx
        .query_one("SELECT coalesce(max(seq), 0) FROM callgate_optouts", &[])
        .await?
        .get(0);
    tx.execute(
        "INSERT INTO callgate_optouts (seq, number, at, source, who, instance)
         SELECT $1 + i, n, $4, s, $5, $6
         FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS t(n, s, i)",
        &[&last, &numbers, &sources, &at, &who, &instance],
    )
    .await?;
    tx.execute(&format!("NOTIFY {CHANNEL}"), &[]).await?;
    tx.commit().await?;
    Ok((1..=entries.len() as u64)
        .map(|i| last as u64 + i)
        .collect())
}

/// The opt-outs after `seq`, in order, at most `FETCH_ROWS`.
pub(crate) async fn after(client: &Client, seq: u64) -> Result<Vec<SharedOptOut>, SharedError> {
    let rows = client
        .query(
            "SELECT seq, number, at, source FROM callgate_optouts
             WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&(seq as i64), &FETCH_ROWS],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let (seq, number): (i64, String) = (r.get(0), r.get(1));
            Ok(SharedOptOut {
                seq: seq as u64,
                number: number
                    .parse()
                    .map_err(|_| SharedError::BadRow(format!("opt-out {seq}: `{number}`")))?,
                at: r.get(2),
                source: r.get(3),
            })
        })
        .collect()
}
