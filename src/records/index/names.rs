//! The ids of `facets` and `names` (see the schema), given out within one transaction: the
//! ids it remembers are dropped with it, so a transaction rolled back leaves none behind that
//! the file does not hold.

use super::codes;
use super::rows::{DecisionId, Summary};
use rusqlite::{params, Transaction};
use std::collections::HashMap;

/// Every line looks up its facet and names: a fast hash (the keys are the index's own).
type Map = HashMap<String, i64, foldhash::fast::FixedState>;

#[derive(Default)]
pub(super) struct Names {
    names: Map,
    facets: Map,
    key: String,
}

/// The separator of a facet's parts in its key (a control character no name holds).
const SEP: char = '\u{1f}';

impl Names {
    /// The id of `name`, given when new.
    pub(super) fn name(&mut self, tx: &Transaction, name: &str) -> rusqlite::Result<i64> {
        if let Some(id) = self.names.get(name) {
            return Ok(*id);
        }
        tx.prepare_cached("INSERT OR IGNORE INTO names (name) VALUES (?1)")?
            .execute([name])?;
        let id = tx
            .prepare_cached("SELECT id FROM names WHERE name = ?1")?
            .query_row([name], |r| r.get(0))?;
        self.names.insert(name.to_string(), id);
        Ok(id)
    }

    /// The id of the facet of `s` (its kind, verdict, reasons, disposition, action, who,
    /// consent used).
    pub(super) fn facet(&mut self, tx: &Transaction, s: &Summary) -> rusqlite::Result<i64> {
        let kind = codes::kind(s.kind);
        let parts = [
            s.verdict.as_deref().unwrap_or(""),
            s.reasons.as_deref().unwrap_or(""),
            s.disposition.as_deref().unwrap_or(""),
            s.action.as_deref().unwrap_or(""),
            s.who.as_deref().unwrap_or(""),
            s.consent.as_deref().unwrap_or(""),
        ];
        self.key.clear();
        self.key.push(char::from(b'0' + kind as u8));
        for p in parts {
            self.key.push(SEP);
            self.key.push_str(p);
        }
        if let Some(id) = self.facets.get(&self.key) {
            return Ok(*id);
        }
        let [verdict, reasons, disposition, action, who, consent] = parts;
        let values = params![kind, verdict, reasons, disposition, action, who, consent];
        tx.prepare_cached(
            "INSERT OR IGNORE INTO facets
             (kind, verdict, reasons, disposition, action, who, consent)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(values)?;
        let id = tx
            .prepare_cached(
                "SELECT id FROM facets WHERE kind = ?1 AND verdict = ?2 AND reasons = ?3
                 AND disposition = ?4 AND action = ?5 AND who = ?6 AND consent = ?7",
            )?
            .query_row(values, |r| r.get(0))?;
        self.facets.insert(self.key.clone(), id);
        Ok(id)
    }

    /// A decision id as the index keeps it: its instance's name id above its sequence
    /// number (None: not one it can hold).
    pub(super) fn decision(
        &mut self,
        tx: &Transaction,
        d: &DecisionId,
    ) -> rusqlite::Result<Option<i64>> {
        let (instance, seq) = match d {
            DecisionId::Parts(instance, seq) => match i64::try_from(*seq) {
                Ok(seq) if seq < 1 << codes::SEQ_BITS => (&**instance, seq),
                _ => return Ok(None),
            },
            DecisionId::Whole(id) => match codes::decision_parts(id) {
                Some(parts) => parts,
                None => return Ok(None),
            },
        };
        Ok(Some(self.name(tx, instance)? << codes::SEQ_BITS | seq))
    }
}
