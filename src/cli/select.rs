//! Which audit files to read and which of their records to keep: shared by the exports.

use std::path::PathBuf;

/// The files to read and which of their records to keep (shared by the exports).
#[derive(clap::Args)]
pub(crate) struct Selection {
    /// Audit files, or directories of them.
    pub(crate) paths: Vec<PathBuf>,
    /// From this time on (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long)]
    pub(crate) from: Option<String>,
    /// Up to this time (exclusive), or through this day (YYYY-MM-DD, UTC).
    #[arg(long)]
    pub(crate) to: Option<String>,
    /// Called number, in any form (+1 212 555 0143, 2125550143...).
    #[arg(long)]
    pub(crate) number: Option<String>,
    #[arg(long)]
    pub(crate) campaign: Option<String>,
}

/// A `Selection` read: files oldest first, times, the number in E.164.
pub(crate) struct Selected {
    pub(crate) files: Vec<PathBuf>,
    pub(crate) from: Option<chrono::DateTime<chrono::Utc>>,
    pub(crate) to: Option<chrono::DateTime<chrono::Utc>>,
    pub(crate) number: Option<String>,
    pub(crate) campaign: Option<String>,
}

impl Selection {
    pub(crate) fn read(self) -> anyhow::Result<Selected> {
        self.read_with(true)
    }

    /// `files_needed`: false when the records come from elsewhere (the shared database).
    pub(crate) fn read_with(self, files_needed: bool) -> anyhow::Result<Selected> {
        anyhow::ensure!(
            !files_needed || !self.paths.is_empty(),
            "name the audit files, or directories of them, to read"
        );
        let date = |s: Option<String>, what: &str| -> anyhow::Result<_> {
            s.map(|s| {
                callgate::lists::load::parse_date(&s).ok_or_else(|| {
                    anyhow::anyhow!("--{what} `{s}`: expected RFC 3339 or YYYY-MM-DD")
                })
            })
            .transpose()
        };
        let number = self
            .number
            .map(|n| {
                n.parse::<callgate::number::E164>()
                    .map(|e| e.to_string())
                    .map_err(|e| anyhow::anyhow!("--number `{n}`: {e}"))
            })
            .transpose()?;
        // A day given alone is taken whole: `--to 2026-12-01` includes that day.
        let day_only = self.to.as_deref().is_some_and(|t| t.trim().len() == 10);
        let to = date(self.to, "to")?.map(|t| match day_only {
            true => t + chrono::Duration::days(1),
            false => t,
        });
        Ok(Selected {
            files: callgate::audit::verify::expand(&self.paths)?,
            from: date(self.from, "from")?,
            to,
            number,
            campaign: self.campaign,
        })
    }
}

/// `json` or `csv`.
pub(crate) fn is_csv(format: &str) -> anyhow::Result<bool> {
    match format {
        "json" => Ok(false),
        "csv" => Ok(true),
        f => anyhow::bail!("--format `{f}`: expected json or csv"),
    }
}
