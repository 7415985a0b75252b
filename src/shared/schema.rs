//! The shared database's tables, created and migrated by callgate: each step once, in order,
//! under a lock so two instances starting together do not both run it.

use super::SharedError;
use tokio_postgres::Client;

/// Held while migrating (`pg_advisory_xact_lock`): any number callgate alone uses.
const MIGRATION_LOCK: i64 = 0x6361_6c6c_6761_7401;

/// Every step, by version. A step is never changed once released: a change is a new step.
const STEPS: &[(i32, &str)] = &[
    (
        1,
        // One log of every change to the shared state (opt-outs, consent, emergency closures), so
        // every instance applies them in one order. `seq` is given under `CHANGES_LOCK` in commit
        // order (see `changes`): an instance that has read up to a seq never misses a row that
        // commits later below it.
        "CREATE TABLE callgate_changes (
        seq bigint PRIMARY KEY,
        kind text NOT NULL,
        body jsonb NOT NULL,
        at timestamptz NOT NULL,
        who text NOT NULL,
        instance text NOT NULL,
        committed_at timestamptz NOT NULL DEFAULT now());",
    ),
    (
        2,
        // Each instance, as it last reported itself: what the console shows of the cluster.
        "CREATE TABLE callgate_instances (
        name text PRIMARY KEY,
        started_at timestamptz NOT NULL,
        seen_at timestamptz NOT NULL,
        applied_seq bigint NOT NULL,
        version text NOT NULL);",
    ),
];

/// The newest version this callgate knows.
pub(crate) const VERSION: i32 = STEPS[STEPS.len() - 1].0;

/// Bring the schema to `VERSION`; a database migrated by a newer callgate is refused (its
/// tables may mean something this one does not know).
pub(crate) async fn migrate(client: &mut Client) -> Result<i32, SharedError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS callgate_schema (
            version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    let found: Option<i32> = tx
        .query_one("SELECT max(version) FROM callgate_schema", &[])
        .await?
        .get(0);
    let found = found.unwrap_or(0);
    if found > VERSION {
        return Err(SharedError::NewerSchema {
            found,
            known: VERSION,
        });
    }
    for (version, sql) in STEPS.iter().filter(|(v, _)| *v > found) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO callgate_schema (version) VALUES ($1)",
            &[version],
        )
        .await?;
        tracing::info!(version, "shared database schema migrated");
    }
    tx.commit().await?;
    Ok(VERSION)
}
