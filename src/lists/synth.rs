//! A synthetic National DNC Registry for tests and benchmarks: deterministic for a seed, any
//! size up to 300 million, shaped like the real one. Area codes are the US geographic NPAs in
//! service from the NANPA report; each NPA has its own share of assigned exchanges (NXX
//! 200-999, not N11 or the reserved 555/950/958/959/976); numbers are handed out in
//! thousands-blocks (number pooling), and registrations fill an assigned thousands-block at a
//! density that varies by area and block. The output is ascending, like FTC per-area-code files.
//!
//! Every choice is a hash of (seed, position), not a draw from a running generator, so the same
//! seed gives the same registry whatever the size of the change list asked alongside it.

use std::io::Write;

const NANPA_CSV: &str = include_str!("../../config/reference/nanpa_npa_report.csv");

/// The 375 US geographic NPAs in service (from the embedded NANPA report).
pub(crate) fn us_geographic_npas() -> Vec<u16> {
    us_geographic_npa_states()
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

/// Those NPAs with their state (the report's LOCATION column).
pub fn us_geographic_npa_states() -> Vec<(u16, String)> {
    let mut v: Vec<(u16, String)> = NANPA_CSV
        .lines()
        .skip(2)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.len() > 10 && f[7] == "G" && f[9] == "US" && f[10] == "Y")
                .then(|| Some((f[0].parse().ok()?, f[8].to_string())))
                .flatten()
        })
        .collect();
    v.sort_unstable();
    v
}

use crate::hashing::mix;

fn unit(seed: u64, key: u64, salt: u64) -> f64 {
    (mix(seed ^ mix(key.wrapping_mul(31).wrapping_add(salt))) >> 11) as f64 / (1u64 << 53) as f64
}

fn reserved_nxx(nxx: u16) -> bool {
    nxx % 100 == 11 || matches!(nxx, 555 | 950 | 958 | 959 | 976)
}

/// One assigned thousands-block (`NPA-NXX-X`) and its weight.
struct Thousands {
    /// NPA * 10^4 + NXX * 10 + X: the first 7 digits of its numbers.
    prefix: u64,
    weight: f64,
}

fn thousands_blocks(seed: u64) -> Vec<Thousands> {
    let mut out = Vec::new();
    for npa in us_geographic_npas() {
        let npa = npa as u64;
        let fill = 0.35 + 0.6 * unit(seed, npa, 1);
        let population = 0.25 + 0.75 * unit(seed, npa, 2);
        for nxx in 200..=999u64 {
            if reserved_nxx(nxx as u16) || unit(seed, npa * 1000 + nxx, 3) >= fill {
                continue;
            }
            for x in 0..10u64 {
                let prefix = npa * 10_000 + nxx * 10 + x;
                if unit(seed, prefix, 4) < 0.75 {
                    out.push(Thousands {
                        prefix,
                        weight: population * (0.15 + 0.85 * unit(seed, prefix, 5)),
                    });
                }
            }
        }
    }
    out
}

/// What to generate.
pub struct Spec {
    pub count: u64,
    pub seed: u64,
    /// Also produce a change list of exactly this many lines (half additions, half deletions).
    pub changes: u64,
}

/// Receives the generated numbers (10-digit national form), ascending.
pub trait Sink {
    fn full(&mut self, national: u64) -> std::io::Result<()>;
    fn change(&mut self, _national: u64, _add: bool) -> std::io::Result<()> {
        Ok(())
    }
    fn new_full(&mut self, _national: u64) -> std::io::Result<()> {
        Ok(())
    }
}

/// Generate a registry of exactly `spec.count` numbers; with `spec.changes`, also a change list
/// and the full list it leads to (base minus deletions plus additions).
pub fn generate(spec: &Spec, sink: &mut dyn Sink) -> std::io::Result<u64> {
    let blocks = thousands_blocks(spec.seed);
    let cap = blocks.len() as u64 * 1000;
    if spec.count > cap / 2 {
        return Err(std::io::Error::other(format!(
            "{} numbers asked; this seed's NANP structure holds at most {} at a realistic density",
            spec.count,
            cap / 2
        )));
    }
    let total: f64 = blocks.iter().map(|b| b.weight).sum();
    let (adds, dels) = (spec.changes / 2, spec.changes - spec.changes / 2);
    let dels = dels.min(spec.count);
    let change_seed = mix(spec.seed ^ 0x00c4_a96e);
    let (mut emitted, mut added, mut deleted) = (0u64, 0u64, 0u64);
    let mut cum = 0.0f64;
    let (mut members, mut add, mut del) = ([0u64; 16], [0u64; 16], [0u64; 16]);
    let last = blocks.len() - 1;
    for (i, b) in blocks.iter().enumerate() {
        cum += b.weight;
        // Cumulative targets, so rounding never drifts and the totals are exact.
        let target = if i == last {
            spec.count
        } else {
            ((spec.count as f64) * cum / total) as u64
        };
        let k = target.saturating_sub(emitted).min(1000);
        pick(
            mix(spec.seed ^ b.prefix.wrapping_mul(0x9e37_79b9)),
            k,
            1000,
            &mut members,
        );
        emitted += k;
        if spec.changes > 0 {
            let add_target = if i == last {
                adds
            } else {
                adds * (i as u64 + 1) / blocks.len() as u64
            };
            let del_target = if i == last {
                dels
            } else {
                dels * emitted / spec.count.max(1)
            };
            let a = add_target.saturating_sub(added).min(1000 - k);
            let d = del_target.saturating_sub(deleted).min(k);
            added += a;
            deleted += d;
            let mut ranks = [0u64; 16];
            pick(mix(change_seed ^ b.prefix), a, 1000 - k, &mut ranks);
            select(&ranks, &members, false, &mut add);
            pick(mix(change_seed ^ !b.prefix), d, k, &mut ranks);
            select(&ranks, &members, true, &mut del);
        }
        for w in 0..16 {
            let mut bits = members[w] | add[w];
            while bits != 0 {
                let s = (w * 64) as u64 + bits.trailing_zeros() as u64;
                bits &= bits - 1;
                let national = b.prefix * 1000 + s;
                let bit = 1u64 << (s % 64);
                if members[w] & bit != 0 {
                    sink.full(national)?;
                }
                if add[w] & bit != 0 {
                    sink.change(national, true)?;
                } else if del[w] & bit != 0 {
                    sink.change(national, false)?;
                }
                if (members[w] & !del[w] | add[w]) & bit != 0 {
                    sink.new_full(national)?;
                }
            }
        }
    }
    Ok(emitted)
}

/// Choose exactly `k` of `0..n` (Floyd's algorithm) into a bitset (`n <= 1000`).
fn pick(seed: u64, k: u64, n: u64, out: &mut [u64; 16]) {
    *out = [0; 16];
    let (k, invert) = if k > n / 2 { (n - k, true) } else { (k, false) };
    let mut state = seed;
    for j in (n - k)..n {
        state = mix(state.wrapping_add(0x9e37_79b9_7f4a_7c15));
        let t = state % (j + 1);
        let (w, bit) = (t as usize / 64, t % 64);
        if out[w] >> bit & 1 == 1 {
            out[j as usize / 64] |= 1 << (j % 64);
        } else {
            out[w] |= 1 << bit;
        }
    }
    if invert {
        for (w, word) in out.iter_mut().enumerate() {
            let lo = (w as u64 * 64).min(n);
            let hi = (w as u64 * 64 + 64).min(n);
            let valid = if hi - lo == 64 {
                u64::MAX
            } else {
                (1u64 << (hi - lo)) - 1
            };
            *word = !*word & valid;
        }
    }
}

/// Map ranks (a bitset over the members, or over the non-members, in ascending order) to
/// positions.
fn select(ranks: &[u64; 16], members: &[u64; 16], of_members: bool, out: &mut [u64; 16]) {
    *out = [0; 16];
    if ranks.iter().all(|&w| w == 0) {
        return;
    }
    let mut rank = 0u64;
    for p in 0..1000u64 {
        let is_member = members[p as usize / 64] >> (p % 64) & 1 == 1;
        if is_member != of_members {
            continue;
        }
        if ranks[rank as usize / 64] >> (rank % 64) & 1 == 1 {
            out[p as usize / 64] |= 1 << (p % 64);
        }
        rank += 1;
    }
}

/// Writes FTC flat text: `NPANXXXXXX` (or `NPA,NXXXXXX`) per line; change lines as
/// `NPANXXXXXX,<date>,A|D`.
pub(crate) struct FtcWriter<W: Write> {
    pub full: W,
    pub changes: Option<W>,
    pub new_full: Option<W>,
    pub comma: bool,
    pub date: String,
}

fn write_number<W: Write>(w: &mut W, national: u64, comma: bool) -> std::io::Result<()> {
    let mut buf = [0u8; 11];
    let mut n = national;
    for i in (0..10).rev() {
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    if comma {
        buf.copy_within(3..10, 4);
        buf[3] = b',';
        w.write_all(&buf)
    } else {
        w.write_all(&buf[..10])
    }
}

impl<W: Write> Sink for FtcWriter<W> {
    fn full(&mut self, national: u64) -> std::io::Result<()> {
        write_number(&mut self.full, national, self.comma)?;
        self.full.write_all(b"\n")
    }
    fn change(&mut self, national: u64, add: bool) -> std::io::Result<()> {
        if let Some(w) = &mut self.changes {
            write_number(w, national, false)?;
            writeln!(w, ",{},{}", self.date, if add { 'A' } else { 'D' })?;
        }
        Ok(())
    }
    fn new_full(&mut self, national: u64) -> std::io::Result<()> {
        if let Some(w) = &mut self.new_full {
            write_number(w, national, self.comma)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Vec<u64>, Vec<(u64, bool)>, Vec<u64>);
    impl Sink for Collect {
        fn full(&mut self, n: u64) -> std::io::Result<()> {
            self.0.push(n);
            Ok(())
        }
        fn change(&mut self, n: u64, add: bool) -> std::io::Result<()> {
            self.1.push((n, add));
            Ok(())
        }
        fn new_full(&mut self, n: u64) -> std::io::Result<()> {
            self.2.push(n);
            Ok(())
        }
    }

    fn run(count: u64, seed: u64, changes: u64) -> Collect {
        let mut c = Collect(vec![], vec![], vec![]);
        generate(
            &Spec {
                count,
                seed,
                changes,
            },
            &mut c,
        )
        .unwrap();
        c
    }

    #[test]
    fn npas_are_the_us_geographic_ones_in_service() {
        let npas = us_geographic_npas();
        assert_eq!(npas.len(), 375);
        assert!(npas.contains(&212) && !npas.contains(&800) && !npas.contains(&416));
    }

    #[test]
    fn exact_count_ascending_valid_and_deterministic() {
        let a = run(50_000, 7, 0);
        assert_eq!(a.0.len(), 50_000);
        assert!(a.0.windows(2).all(|w| w[0] < w[1]));
        assert!(a.0.iter().all(|&n| crate::number::E164::nanp(n).is_some()));
        assert_eq!(a.0, run(50_000, 7, 0).0);
        assert_ne!(a.0, run(50_000, 8, 0).0);
    }

    #[test]
    fn change_list_leads_to_the_new_full_list() {
        let c = run(20_000, 3, 2_000);
        let mut set: std::collections::BTreeSet<u64> = c.0.iter().copied().collect();
        for &(n, add) in &c.1 {
            if add {
                assert!(set.insert(n));
            } else {
                assert!(set.remove(&n));
            }
        }
        assert_eq!(set.into_iter().collect::<Vec<_>>(), c.2);
        assert_eq!(c.1.len(), 2_000);
    }

    #[test]
    fn spread_over_every_area_code() {
        let a = run(100_000, 1, 0);
        let npas: std::collections::HashSet<u64> = a.0.iter().map(|n| n / 10_000_000).collect();
        assert_eq!(npas.len(), 375);
    }
}
