//! The numbers of a closed segment (see the schema): its (number, place) pairs in order, in
//! blocks of about `BLOCK_PAIRS`, one row a block, keyed by the segment and the block's last
//! number. A number's lines in a segment are one seek and one block read; closing a segment
//! costs a sort and a few hundred rows, not a B-tree insert per line.

use super::codes;
use rusqlite::{params, Connection, Transaction};

/// Pairs a block holds (768 bytes: a block fits in its B-tree page, no overflow page to read);
/// a number's pairs are never split between blocks.
const BLOCK_PAIRS: usize = 48;

/// The pairs (number, place) of the rows at places `from..to` that name a number.
fn pairs(tx: &Connection, from: i64, to: i64) -> rusqlite::Result<Vec<(i64, i64)>> {
    let mut q = tx.prepare_cached(
        "SELECT number, place FROM entries WHERE place >= ?1 AND place < ?2 AND number != 0
         UNION ALL SELECT number, place FROM more_numbers WHERE place >= ?1 AND place < ?2",
    )?;
    let rows = q.query_map([from, to], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let mut pairs = rows.collect::<rusqlite::Result<Vec<(i64, i64)>>>()?;
    pairs.sort_unstable();
    Ok(pairs)
}

fn encode(pairs: &[(i64, i64)]) -> Vec<u8> {
    let mut b = Vec::with_capacity(pairs.len() * 16);
    for (n, p) in pairs {
        b.extend_from_slice(&n.to_le_bytes());
        b.extend_from_slice(&p.to_le_bytes());
    }
    b
}

fn decode(b: &[u8]) -> impl Iterator<Item = (i64, i64)> + '_ {
    b.chunks_exact(16).map(|c| {
        let n = i64::from_le_bytes(c[..8].try_into().unwrap_or_default());
        let p = i64::from_le_bytes(c[8..].try_into().unwrap_or_default());
        (n, p)
    })
}

/// Close the day's open segment (its rows from offset `from` to `to`): their numbers go into
/// `numbers` in blocks, under the segment's first place.
pub(super) fn close(tx: &Transaction, day: &str, from: u64, to: u64) -> rusqlite::Result<()> {
    let (Some(seg), Some(end)) = (codes::place(day, from), codes::place(day, to)) else {
        return Ok(());
    };
    let pairs = pairs(tx, seg, end)?;
    let mut insert =
        tx.prepare_cached("INSERT INTO numbers (seg, last, first, pairs) VALUES (?1, ?2, ?3, ?4)")?;
    let mut rest = &pairs[..];
    while let Some(first) = rest.first() {
        let mut n = BLOCK_PAIRS.min(rest.len());
        while n < rest.len() && rest[n].0 == rest[n - 1].0 {
            n += 1;
        }
        let (block, after) = rest.split_at(n);
        insert.execute(params![seg, block[n - 1].0, first.0, encode(block)])?;
        rest = after;
    }
    if !pairs.is_empty() {
        tx.prepare_cached("INSERT INTO segments (seg, day, end) VALUES (?1, ?1 >> 40, ?2)")?
            .execute([seg, end])?;
    }
    tx.prepare_cached("UPDATE days SET keyed_to = ?1, open_rows = 0 WHERE day = ?2")?
        .execute(params![i64::try_from(to).unwrap_or(i64::MAX), day])?;
    Ok(())
}

/// The places of `number` in the closed segments of the days from `first_day` on.
pub(super) fn places_of(
    db: &Connection,
    number: i64,
    first_day: i64,
) -> rusqlite::Result<Vec<i64>> {
    let mut q = db.prepare_cached(
        "SELECT k.pairs FROM segments s CROSS JOIN numbers k ON k.seg = s.seg
           AND k.last = (SELECT min(last) FROM numbers WHERE seg = s.seg AND last >= ?1)
         WHERE s.day >= ?2 AND k.first <= ?1",
    )?;
    let mut places = vec![];
    let mut rows = q.query(params![number, first_day])?;
    while let Some(r) = rows.next()? {
        let block = r.get_ref(0)?.as_blob()?;
        places.extend(decode(block).filter(|(n, _)| *n == number).map(|(_, p)| p));
    }
    Ok(places)
}

/// The (place, number) pairs of closed segments that their blocks do not hold, or hold but
/// the rows do not (what `check` names).
pub(super) fn unfound(db: &Connection) -> rusqlite::Result<Vec<(i64, i64)>> {
    let mut segs = db.prepare("SELECT seg, end FROM segments ORDER BY seg")?;
    let segs = segs
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut blocks = db.prepare("SELECT pairs FROM numbers WHERE seg = ?1 ORDER BY last")?;
    let mut differ = vec![];
    for (seg, end) in segs {
        let mut held = vec![];
        let mut rows = blocks.query([seg])?;
        while let Some(r) = rows.next()? {
            held.extend(decode(r.get_ref(0)?.as_blob()?));
        }
        let want = pairs(db, seg, end)?;
        let (held, want): (std::collections::BTreeSet<_>, std::collections::BTreeSet<_>) =
            (held.into_iter().collect(), want.into_iter().collect());
        differ.extend(want.symmetric_difference(&held).map(|(n, p)| (*p, *n)));
    }
    differ.sort_unstable();
    Ok(differ)
}
