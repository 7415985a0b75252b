//! The one door for changes to the compliance state, the API's and the console's alike:
//! opt-outs, consent records, emergency closures. Each is durable when it returns Ok, and
//! audited as the change of who made it. With a shared database (`[shared]`) a change is
//! committed there first and applied here by the follower, as on every other instance.

use crate::app::App;
use crate::lists::optouts::OptOutRecord;
use crate::number::E164;
use crate::policy::consent::{ConsentInput, ConsentRecord, ConsentStore};
use crate::policy::emergency::{Closed, Emergency};
use crate::shared::changes::{Change, OptOutEntry};
use crate::shared::{Shared, SharedError};
use axum::http::StatusCode;
use serde_json::json;
use std::sync::Arc;

/// Why opt-outs were not recorded, and the HTTP status that says it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotRecorded {
    /// Nothing was recorded anywhere: the shared database did not commit.
    #[error("not recorded: {0}")]
    Shared(#[from] SharedError),
    #[error("not recorded in this instance's journal: {0}")]
    Journal(String),
}

impl NotRecorded {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            NotRecorded::Shared(_) => StatusCode::SERVICE_UNAVAILABLE,
            NotRecorded::Journal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Why a change was not made: what was sent (nothing changed), or callgate itself or its
/// shared database (the status says which).
pub(crate) enum Refused {
    Bad(String),
    Failed(StatusCode, String),
}

impl From<SharedError> for Refused {
    fn from(e: SharedError) -> Refused {
        Refused::Failed(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not recorded: {e}"),
        )
    }
}

/// Add an opt-out: `record_optouts` of one.
pub(crate) async fn record_optout(
    app: &Arc<App>,
    n: E164,
    source: Option<String>,
    who: String,
) -> Result<OptOutRecord, NotRecorded> {
    let mut recs = record_optouts(app, vec![(n, source)], who).await?;
    recs.pop()
        .ok_or_else(|| NotRecorded::Journal("nothing written".into()))
}

/// Add opt-outs, all or none, count them and audit each as `who`'s (one admin record a
/// number, as the dossier reads them).
pub(crate) async fn record_optouts(
    app: &Arc<App>,
    entries: Vec<(E164, Option<String>)>,
    who: String,
) -> Result<Vec<OptOutRecord>, NotRecorded> {
    let at = app.clock.now();
    let (recs, shared) = match &app.shared {
        Some(shared) => (shared_optouts(shared, entries, at, &who).await?, true),
        None => {
            let app2 = app.clone();
            // The fsync blocks: keep it off the async executor.
            let res =
                tokio::task::spawn_blocking(move || app2.lists.optouts.add_many_at(entries, at))
                    .await;
            let recs = res
                .map_err(|e| NotRecorded::Journal(e.to_string()))?
                .inspect_err(|e| tracing::error!(error = %e, "opt-out journal write failed"))
                .map_err(|e| NotRecorded::Journal(e.to_string()))?;
            (recs, false)
        }
    };
    app.metrics.optouts_added.inc_by(recs.len() as u64);
    app.metrics
        .optouts_entries
        .set(app.lists.optouts.len() as i64);
    for rec in &recs {
        tracing::info!(number = %rec.number, seq = rec.seq, "opt-out recorded");
        let mut detail = json!({"number": rec.number, "seq": rec.seq, "source": rec.source});
        if shared {
            detail["shared_seq"] = json!(rec.seq);
        }
        app.record_admin("optout_add", who.clone(), detail);
    }
    Ok(recs)
}

/// Opt-outs committed to the shared database: an acknowledged opt-out is on its servers,
/// and in force here once the follower applied it. Their `seq` is the change's.
async fn shared_optouts(
    shared: &Shared,
    entries: Vec<(E164, Option<String>)>,
    at: chrono::DateTime<chrono::Utc>,
    who: &str,
) -> Result<Vec<OptOutRecord>, NotRecorded> {
    let change = Change::OptOuts(
        entries
            .iter()
            .map(|(n, source)| OptOutEntry {
                number: n.to_string(),
                source: source.clone(),
                at: None,
            })
            .collect(),
    );
    let seq = shared.commit(&change, at, who).await.inspect_err(|e| {
        tracing::error!(error = %e, "opt-outs not recorded: the shared database did not commit them")
    })?;
    in_force_here(shared, seq).await;
    Ok(entries
        .into_iter()
        .map(|(n, source)| OptOutRecord {
            seq,
            at,
            number: n.to_string(),
            source,
            shared: Some(seq),
        })
        .collect())
}

/// Wait for the follower to apply change `seq` here; say so when it did not in time (the
/// change is committed, and in force here as soon as the follower is back).
async fn in_force_here(shared: &Shared, seq: u64) -> bool {
    let in_force = shared.in_force(seq).await;
    if !in_force {
        tracing::warn!(
            seq,
            "a change committed to the shared database is not yet in force on this instance"
        );
    }
    in_force
}

/// Add consent records (all or nothing) and audit them as `who`'s, the records themselves
/// in the admin record.
pub(crate) async fn record_consents(
    app: &Arc<App>,
    inputs: Vec<ConsentInput>,
    who: String,
) -> Result<Vec<Arc<ConsentRecord>>, Refused> {
    let now = app.clock.now();
    let (recs, shared_seq) = match &app.shared {
        Some(shared) => {
            ConsentStore::check(&inputs).map_err(|e| Refused::Bad(e.to_string()))?;
            let seq = shared
                .commit(&Change::Consent(inputs.clone()), now, &who)
                .await?;
            let recs = match in_force_here(shared, seq).await {
                // As this instance holds them: their numbers are the ones decisions name.
                true => held_records(app, &inputs, seq),
                false => inputs
                    .iter()
                    .filter_map(|i| i.validate(0).ok().map(Arc::new))
                    .collect(),
            };
            (recs, Some(seq))
        }
        None => {
            let app2 = app.clone();
            let res =
                tokio::task::spawn_blocking(move || app2.gate.state.consent.add(inputs, now)).await;
            let recs = res
                .map_err(|e| Refused::Failed(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
                .map_err(|e| Refused::Bad(e.to_string()))?;
            (recs, None)
        }
    };
    let first = recs.first().map(|r| r.seq).unwrap_or(0);
    let last = recs.last().map(|r| r.seq).unwrap_or(0);
    let mut detail =
        json!({"records": recs.len(), "seq_first": first, "seq_last": last, "consents": recs});
    if let Some(seq) = shared_seq {
        detail["shared_seq"] = json!(seq);
    }
    // The records themselves, so the chained log proves what consent was entered, by whom,
    // and the records index finds them by number.
    app.record_admin("consent_add", who, detail);
    Ok(recs)
}

/// The records of change `seq` the consent store holds, for the numbers of `inputs`.
fn held_records(app: &App, inputs: &[ConsentInput], seq: u64) -> Vec<Arc<ConsentRecord>> {
    let mut numbers: Vec<E164> = inputs
        .iter()
        .filter_map(|i| i.number.parse().ok())
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    let consent = &app.gate.state.consent;
    let mut recs: Vec<Arc<ConsentRecord>> = numbers
        .into_iter()
        .filter_map(|n| consent.get(n))
        .flat_map(|held| held.to_vec())
        .filter(|r| r.shared == Some(seq))
        .collect();
    recs.sort_by_key(|r| r.seq);
    recs
}

/// Replace the emergency closures and audit it as `who`'s: whether they are in force here
/// (with a shared database, they may be committed and not yet applied here).
pub(crate) async fn record_closures(
    app: &Arc<App>,
    closed: Closed,
    who: String,
) -> Result<bool, Refused> {
    // Closures that are not ones are refused before anything is written.
    Emergency::check(&closed).map_err(Refused::Bad)?;
    let mut detail = json!(closed);
    let mut in_force = true;
    match &app.shared {
        Some(shared) => {
            let change = Change::Emergency(closed.clone());
            let seq = shared.commit(&change, app.clock.now(), &who).await?;
            in_force = in_force_here(shared, seq).await;
            detail["shared_seq"] = json!(seq);
        }
        None => {
            let app2 = app.clone();
            let c2 = closed.clone();
            tokio::task::spawn_blocking(move || app2.gate.state.emergency.set(&c2))
                .await
                .map_err(|e| Refused::Failed(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
                .map_err(|e| {
                    Refused::Failed(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
                })?;
        }
    }
    tracing::warn!(states = ?closed.states, npas = ?closed.npas, "state-of-emergency closures changed");
    app.record_admin("emergency_set", who, detail);
    Ok(in_force)
}
