//! Following the shared database: LISTEN for commits, read every change past the last one
//! applied, apply them to the stores, and confirm the instance current. On its own thread, so
//! neither the SIP loop nor the admin API ever waits on the database.

use super::{apply, changes, instances, Parts, Shared, SharedError};
use crate::lists::optouts::Unshared;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, NoTls};

/// Start following on a thread of its own (it runs as long as the process).
pub(crate) fn spawn_follower(shared: Arc<Shared>, parts: Parts) -> std::io::Result<()> {
    super::spawn_thread("shared", follow_forever(shared, Arc::new(parts)))
}

async fn follow_forever(shared: Arc<Shared>, parts: Arc<Parts>) {
    let mut cursor = apply::cursor(&parts.cursor);
    shared.metrics.applied_seq.set(cursor.seq as i64);
    shared.applied.send_replace(cursor.seq);
    let pause = Duration::from_millis(shared.cfg.poll_ms);
    // Read at the first connection (None until then): emptied as they are shared.
    let mut unshared = None;
    loop {
        let e = follow(&shared, &parts, &mut cursor, &mut unshared).await;
        shared.metrics.fetch_errors.inc();
        tracing::warn!(error = %e, "shared database: not following; connecting again");
        *shared.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        tokio::time::sleep(pause).await;
        shared.metrics.reconnects.inc();
    }
}

/// Follow over one connection until it fails: the reason it did. Opt-outs this instance took
/// before it joined are shared first: until they are, it is not confirmed current.
async fn follow(
    shared: &Shared,
    parts: &Arc<Parts>,
    cursor: &mut apply::Cursor,
    unshared: &mut Option<Vec<Unshared>>,
) -> SharedError {
    let (client, mut told) = match shared.bounded(listening(shared)).await {
        Ok(c) => c,
        Err(e) => return e,
    };
    // What the stores hold counts as read even without a cursor: changes numbered at or below
    // it would be skipped, and an opt-out shared under such a number never held here.
    let held = [
        cursor.seq,
        parts.lists.optouts.shared_seq(),
        parts.state.consent.shared_seq(),
        parts.state.emergency.shared_seq(),
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    match shared.bounded(changes::newest(&client)).await {
        Ok(newest) if newest < held => {
            return SharedError::Behind {
                newest,
                applied: held,
            }
        }
        Ok(_) => {}
        Err(e) => return e,
    }
    if let Err(e) = shared.bounded(same_change(&client, *cursor)).await {
        return e;
    }
    if let Err(e) = share_unshared(shared, parts, unshared).await {
        return e;
    }
    let poll = Duration::from_millis(shared.cfg.poll_ms);
    let mut reported: Option<std::time::Instant> = None;
    loop {
        // Everything committed before this moment is in what the read below sees.
        let asked = std::time::Instant::now();
        // Only the reads are bounded: an apply that has begun is always waited for, so two
        // never run at once and the cursor never goes back.
        if let Err(e) = catch_up(&client, shared, parts, cursor).await {
            return e;
        }
        parts.state.currency.confirm(asked);
        *shared.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if reported.is_none_or(|t| t.elapsed() >= poll) {
            reported = Some(std::time::Instant::now());
            // Only what the console shows: a report that fails does not make the instance stale.
            if let Err(e) = shared
                .bounded(instances::report(&client, shared, cursor.seq))
                .await
            {
                tracing::warn!(error = %e, "shared database: this instance's report failed");
            }
        }
        tokio::select! {
            told = told.recv() => if told.is_none() { return SharedError::Closed },
            () = tokio::time::sleep(poll) => {}
        }
    }
}

/// The most opt-outs shared in one change (~0.1 MiB): a fetch of changes (64) stays under
/// ~8 MiB.
const SHARE_BATCH: usize = 1_000;

/// Share the opt-outs this instance took before it joined the cluster (read from its journal
/// at the first connection, oldest first), each stamped with its own time, a change per
/// `SHARE_BATCH`; each shared one leaves `unshared`, so a connection that fails part way
/// resumes where it was. A crash, or a timeout after the commit, shares those again: twice is
/// harmless for an opt-out, never is not.
async fn share_unshared(
    shared: &Shared,
    parts: &Arc<Parts>,
    unshared: &mut Option<Vec<Unshared>>,
) -> Result<(), SharedError> {
    const WHO: &str = "callgate: opt-outs taken before [shared]";
    let unshared = match unshared {
        Some(u) => u,
        None => {
            let p = parts.clone();
            let read = tokio::task::spawn_blocking(move || p.lists.optouts.unshared()).await;
            let read = read.map_err(|e| SharedError::Journal(std::io::Error::other(e)))?;
            unshared.insert(read.map_err(SharedError::Journal)?)
        }
    };
    while !unshared.is_empty() {
        let n = unshared.len().min(SHARE_BATCH);
        let entries = unshared[..n]
            .iter()
            .map(|u| changes::OptOutEntry {
                number: u.number.to_string(),
                source: u.source.clone(),
                at: Some(u.at),
            })
            .collect();
        let change = changes::Change::OptOuts(entries);
        let now = parts.clock.now();
        let seq = shared.commit(&change, now, WHO).await?;
        unshared.drain(..n);
        tracing::info!(
            seq,
            optouts = n,
            left = unshared.len(),
            "opt-outs taken before [shared] are now in the shared database"
        );
        parts.audit.admin(crate::audit::AdminEvent {
            ts: now,
            action: "optouts_shared",
            who: WHO.into(),
            detail: serde_json::json!({"shared_seq": seq, "optouts": n}),
        });
    }
    *unshared = Vec::new();
    Ok(())
}

/// A connection listening for commits: a message on the channel for each (several at
/// once coalesce into one), the channel closed when the connection ends.
async fn listening(shared: &Shared) -> Result<(Client, mpsc::Receiver<()>), SharedError> {
    let (mut client, mut conn) = shared.pg.connect(NoTls).await?;
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => {
                    let _ = tx.try_send(());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "shared database connection ended");
                    return;
                }
                None => return,
            }
        }
    });
    shared.migrate(&mut client).await?;
    client
        .batch_execute(&format!("LISTEN {}", changes::CHANNEL))
        .await?;
    Ok((client, rx))
}

/// Whether the change the cursor names is the one this database holds under its number: one
/// restored from a backup, an asynchronous standby promoted after losing commits, or another
/// cluster's database numbers other changes the same, and following it would skip them.
async fn same_change(client: &Client, cursor: apply::Cursor) -> Result<(), SharedError> {
    let Some(at) = cursor.at else {
        return Ok(()); // no cursor, or an older callgate's: the number check alone
    };
    match changes::at_of(client, cursor.seq).await? {
        Some(held) if held == at => Ok(()),
        _ => Err(SharedError::Diverged { seq: cursor.seq }),
    }
}

/// Apply every change past the cursor, in order.
async fn catch_up(
    client: &Client,
    shared: &Shared,
    parts: &Arc<Parts>,
    cursor: &mut apply::Cursor,
) -> Result<(), SharedError> {
    loop {
        let rows = shared.bounded(changes::after(client, cursor.seq)).await?;
        let full = rows.len() as i64 == changes::FETCH_ROWS;
        let Some((first, last)) = rows.first().zip(rows.last()).map(|(f, l)| (f.seq, l.seq)) else {
            return Ok(());
        };
        let next = apply::Cursor {
            seq: last,
            at: rows.last().map(|r| r.at),
        };
        let p = parts.clone();
        // The journals' fsyncs block.
        let done = tokio::task::spawn_blocking(move || {
            let done = apply::apply(&p, rows)?;
            apply::set_cursor(&p.cursor, next)?;
            Ok(done)
        })
        .await
        .map_err(|e| SharedError::Journal(std::io::Error::other(e)))?
        .map_err(SharedError::Journal)?;
        *cursor = next;
        shared.metrics.applied_seq.set(last as i64);
        shared.applied.send_replace(last);
        record(parts, first, last, &done);
        if !full {
            return Ok(());
        }
    }
}

/// What a batch of changes did, in the log and this instance's chained records.
fn record(parts: &Parts, first: u64, last: u64, done: &apply::Applied) {
    for why in &done.refused {
        tracing::error!(change = %why, "a change from the shared database is refused here");
    }
    if done.optouts + done.consent + done.emergency == 0 && done.refused.is_empty() {
        // All held here already (read again after a restart).
        return;
    }
    tracing::info!(
        first,
        last,
        optouts = done.optouts,
        consent = done.consent,
        emergency = done.emergency,
        "changes from the shared database in force"
    );
    parts.audit.admin(crate::audit::AdminEvent {
        ts: parts.clock.now(),
        action: "shared_changes_applied",
        who: "shared database".into(),
        detail: serde_json::json!({"first_seq": first, "last_seq": last,
            "optouts": done.optouts, "consent": done.consent, "emergency": done.emergency,
            "refused": done.refused}),
    });
}
