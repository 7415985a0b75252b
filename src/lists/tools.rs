//! `callgate lists ...`: the offline tools around snapshots (compile, generate, info). Each
//! prints a short report; errors name the file (and line) at fault.

use super::compile::{compile, CompileSpec};
use super::snapshot;
use super::synth::{self, FtcWriter, Spec};
use super::NumberSet;
use anyhow::Context;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

pub fn compile_to(spec: &CompileSpec, out: &Path) -> anyhow::Result<String> {
    let t = Instant::now();
    let (meta, set) = compile(spec, chrono::Utc::now())?;
    let built = t.elapsed();
    let sum = snapshot::write(out, &meta, &set)
        .with_context(|| format!("{}: cannot write snapshot", out.display()))?;
    let mut r = format!(
        "{}: list `{}` ({:?}), {} entries, version sha256:{}, {} bytes in memory; compiled in {:.2} s, written in {:.2} s\n",
        out.display(),
        meta.id,
        meta.kind,
        meta.entries,
        &sum[..16],
        set.memory_bytes(),
        built.as_secs_f64(),
        (t.elapsed() - built).as_secs_f64(),
    );
    for s in &meta.sources {
        r += &format!(
            "  {} {}: {} lines, sha256:{}\n",
            s.role,
            s.name,
            s.lines,
            &s.sha256[..16.min(s.sha256.len())]
        );
    }
    Ok(r)
}

pub fn info(path: &Path) -> anyhow::Result<String> {
    let t = Instant::now();
    let snap = snapshot::read(path)?;
    Ok(format!(
        "{}\nversion: sha256:{}\nentries: {}\nmemory:  {} bytes\nloaded and verified in {:.3} s\nmeta:    {}\n",
        path.display(),
        &snap.sha256[..16],
        snap.set.len(),
        snap.set.memory_bytes(),
        t.elapsed().as_secs_f64(),
        serde_json::to_string_pretty(&snap.meta)?
    ))
}

pub struct GenerateArgs<'a> {
    pub count: u64,
    pub seed: u64,
    pub out: &'a Path,
    pub comma: bool,
    pub changes: u64,
    pub changes_out: Option<&'a Path>,
    pub new_full_out: Option<&'a Path>,
    pub date: String,
}

pub fn generate(a: &GenerateArgs) -> anyhow::Result<String> {
    let create = |p: &Path| -> anyhow::Result<BufWriter<std::fs::File>> {
        Ok(BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(p).with_context(|| format!("{}: cannot create", p.display()))?,
        ))
    };
    if a.changes > 0 && a.changes_out.is_none() {
        anyhow::bail!("--changes needs --changes-out");
    }
    let t = Instant::now();
    let mut w = FtcWriter {
        full: create(a.out)?,
        changes: a.changes_out.map(create).transpose()?,
        new_full: a.new_full_out.map(create).transpose()?,
        comma: a.comma,
        date: a.date.clone(),
    };
    let n = synth::generate(
        &Spec {
            count: a.count,
            seed: a.seed,
            changes: a.changes,
        },
        &mut w,
    )?;
    w.full.flush()?;
    if let Some(c) = &mut w.changes {
        c.flush()?;
    }
    if let Some(c) = &mut w.new_full {
        c.flush()?;
    }
    Ok(format!(
        "{}: {} synthetic numbers (seed {}){} in {:.1} s. SYNTHETIC DATA: not the registry.\n",
        a.out.display(),
        n,
        a.seed,
        if a.changes > 0 {
            format!(", change list of {} lines", a.changes)
        } else {
            String::new()
        },
        t.elapsed().as_secs_f64()
    ))
}
