//! The cluster's instances as they report themselves: each, at every poll while it follows the
//! database, notes when it started, that it is there, and the last change it applied.

use super::{Instance, Shared, SharedError};
use std::time::Duration;
use tokio_postgres::Client;

/// This instance is there, having applied up to `applied`.
pub(crate) async fn report(
    client: &Client,
    shared: &Shared,
    applied: u64,
) -> Result<(), SharedError> {
    client
        .execute(
            "INSERT INTO callgate_instances (name, started_at, seen_at, applied_seq, version)
             VALUES ($1, $2, now(), $3, $4)
             ON CONFLICT (name) DO UPDATE SET started_at = EXCLUDED.started_at,
                 seen_at = now(), applied_seq = EXCLUDED.applied_seq,
                 version = EXCLUDED.version",
            &[
                &shared.instance,
                &shared.started_at,
                &(applied as i64),
                &env!("CARGO_PKG_VERSION"),
            ],
        )
        .await?;
    Ok(())
}

/// Every instance seen in the last week; the time since each reported and how far behind it
/// was, by the database's clock.
pub(crate) const LIST: &str = "
    SELECT name, started_at,
           (extract(epoch FROM now() - seen_at) * 1000)::bigint,
           greatest((SELECT coalesce(max(seq), 0) FROM callgate_changes) - applied_seq, 0),
           version
    FROM callgate_instances WHERE seen_at > now() - interval '7 days' ORDER BY name";

pub(crate) fn row(r: &tokio_postgres::Row) -> Result<Instance, SharedError> {
    let ms: i64 = r.try_get(2)?;
    let behind: i64 = r.try_get(3)?;
    Ok(Instance {
        name: r.try_get(0)?,
        started_at: r.try_get(1)?,
        seen_ago: Duration::from_millis(ms.max(0) as u64),
        behind: behind.max(0) as u64,
        version: r.try_get(4)?,
    })
}
