//! The chain of the dossier's period: every day file from the first day asked for to the day
//! after the last (a call's record is written when it ends), and every day holding one of the
//! records, walked in order, each linked to the one before.

use super::{name, Day};
use crate::audit::walk::{walk_day, DayWalk};
use crate::records::export::FindError;
use crate::records::index::compressed_since;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub(super) struct Walks {
    /// By day (`audit-YYYY-MM-DD`): the file walked and what the walk found.
    by_day: BTreeMap<String, (PathBuf, DayWalk)>,
}

fn in_period(
    day: Option<NaiveDate>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> bool {
    let Some(day) = day else { return false };
    from.is_none_or(|f| day >= f.date_naive())
        && to.is_none_or(|t| day <= t.date_naive() + chrono::Duration::days(1))
}

/// The hash the first line of `files[i]` must name: the walk of the file before it, else its
/// final hash read now (None when there is no file before, or it cannot be read).
fn expected(files: &[PathBuf], i: usize, previous: Option<&DayWalk>) -> Option<String> {
    // A walk that broke has no head: the file's final hash is read instead.
    if let Some(head) = previous.and_then(|w| w.head.clone()) {
        return Some(head);
    }
    let before = compressed_since(files.get(i.checked_sub(1)?)?);
    crate::audit::chain::final_hash(&before)
        .ok()
        .map(|(h, _)| h)
}

pub(super) fn walk_period(
    files: &[PathBuf],
    with_entries: &BTreeSet<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<Walks, FindError> {
    let mut by_day = BTreeMap::new();
    let mut previous: Option<DayWalk> = None;
    for (i, file) in files.iter().enumerate() {
        let day = crate::records::index::day_of(file);
        let wanted =
            with_entries.contains(&day) || in_period(crate::audit::chain::day_of(file), from, to);
        if !wanted {
            previous = None;
            continue;
        }
        let path = compressed_since(file);
        let expect = expected(files, i, previous.as_ref());
        let walk = walk_day(&path, expect.as_deref(), i + 1 == files.len())?;
        by_day.insert(day, (path, walk.clone()));
        previous = Some(walk);
    }
    Ok(Walks { by_day })
}

impl Walks {
    pub(super) fn of(&self, day: &str) -> Option<&DayWalk> {
        self.by_day.get(day).map(|(_, w)| w)
    }

    pub(super) fn days(&self) -> Vec<Day> {
        self.by_day.values().map(|(file, w)| day(file, w)).collect()
    }
}

fn day(file: &Path, walk: &DayWalk) -> Day {
    Day {
        file: name(file),
        starts_from: walk.starts_from.clone(),
        linked_to_previous: walk.linked,
        verified: walk.verified(),
        broken_at: walk.broken_from.as_ref().map(|b| b.0),
        why: match (&walk.broken_from, walk.linked) {
            (Some((_, why)), _) => Some(why.clone()),
            (None, Some(false)) => {
                Some("the first line does not name the previous file's seal".into())
            }
            _ => None,
        },
    }
}
