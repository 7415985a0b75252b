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
    (
        3,
        // Frequency caps counted across instances (see `caps`): one row per call counted, kept
        // until its longest window has passed, and the count made in one statement under a
        // lock per number and subject, so two instances never both let the call past a cap
        // through. `force`: a call that goes ahead whatever the count (a shadow campaign's) is
        // counted even past a cap.
        "CREATE TABLE callgate_cap_calls (
        number bigint NOT NULL,
        subject bigint NOT NULL,
        at bigint NOT NULL,
        keep_until bigint NOT NULL,
        instance text NOT NULL);
        CREATE INDEX callgate_cap_calls_key ON callgate_cap_calls (number, subject, at);
        CREATE INDEX callgate_cap_calls_keep ON callgate_cap_calls (keep_until);
        CREATE FUNCTION callgate_cap_take(numbers bigint[], subjects bigint[], windows bigint[],
            limits integer[], at_unix bigint, inst text, force boolean) RETURNS integer
        LANGUAGE plpgsql AS $$
        DECLARE
            i integer;
            n bigint;
            k bigint;
            reached integer := 0;
        BEGIN
            -- Locks taken in one order, so two counts never wait on each other crosswise.
            FOR k IN SELECT DISTINCT hashtextextended(numbers[j]::text || '/' || subjects[j]::text, 0)
                     FROM generate_subscripts(numbers, 1) AS j ORDER BY 1 LOOP
                PERFORM pg_advisory_xact_lock(k);
            END LOOP;
            FOR i IN 1 .. coalesce(array_length(numbers, 1), 0) LOOP
                SELECT count(*) INTO n FROM callgate_cap_calls c
                 WHERE c.number = numbers[i] AND c.subject = subjects[i]
                   AND c.at > at_unix - windows[i];
                IF n >= limits[i] THEN
                    reached := i;
                    EXIT;
                END IF;
            END LOOP;
            IF reached = 0 OR force THEN
                INSERT INTO callgate_cap_calls (number, subject, at, keep_until, instance)
                    SELECT numbers[j], subjects[j], at_unix, at_unix + max(windows[j]), inst
                      FROM generate_subscripts(numbers, 1) AS j
                     GROUP BY numbers[j], subjects[j];
            END IF;
            RETURN reached;
        END $$;",
    ),
    (
        4,
        // The cluster's records: every line of every instance's log (decisions, calls, admin
        // records), shipped from the log at least once and kept once by its place in it. The
        // log stays the tamper-evident truth; this is what the cluster's exports read.
        "CREATE TABLE callgate_records (
        instance text NOT NULL,
        day text NOT NULL,
        at_byte bigint NOT NULL,
        kind text NOT NULL,
        ts_ms bigint,
        number bigint,
        line text NOT NULL,
        PRIMARY KEY (instance, day, at_byte));
        CREATE INDEX callgate_records_number ON callgate_records (number, ts_ms);
        CREATE INDEX callgate_records_time ON callgate_records (kind, ts_ms);
        CREATE TABLE callgate_record_positions (
        instance text NOT NULL,
        day text NOT NULL,
        shipped bigint NOT NULL,
        last_hash text,
        sealed boolean NOT NULL DEFAULT false,
        PRIMARY KEY (instance, day));",
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
