//! The FTC registry download as it arrives: a zip of per-area-code files, compiled without
//! unpacking by hand; all or nothing, like every list file.

use callgate::lists::compile::{compile, CompileSpec};
use callgate::lists::ListKind;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A zip (deflated, as the FTC's) of `members`: (name, text).
fn write_zip(path: &Path, members: &[(&str, &str)]) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, text) in members {
        z.start_file(*name, opts).unwrap();
        z.write_all(text.as_bytes()).unwrap();
    }
    z.finish().unwrap();
}

fn full(paths: Vec<PathBuf>) -> CompileSpec {
    CompileSpec {
        id: Some("national".into()),
        kind: Some(ListKind::National),
        state: None,
        source_date: None,
        base: None,
        full: paths,
        changes: vec![],
    }
}

const AREA_201: &str = "201,5550100\n201,5550101\n";
const AREA_212: &str = "212,5550143\n212,5550144\n212,5550145\n";

/// Why compiling this archive alone was refused.
fn refusal(zip: PathBuf) -> String {
    match compile(&full(vec![zip]), chrono::Utc::now()) {
        Ok((meta, _)) => panic!("compiled {} entries", meta.entries),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_zip_of_area_code_files_compiles_to_the_set_its_files_hold() {
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("download.zip");
    write_zip(&zip, &[("212.txt", AREA_212), ("201.txt", AREA_201)]);
    let (a, b) = (dir.path().join("201.txt"), dir.path().join("212.txt"));
    std::fs::write(&a, AREA_201).unwrap();
    std::fs::write(&b, AREA_212).unwrap();
    let now = chrono::Utc::now();
    let (meta, from_zip) = compile(&full(vec![zip]), now).unwrap();
    let (_, from_files) = compile(&full(vec![a, b]), now).unwrap();
    assert_eq!(meta.entries, 5);
    assert_eq!(from_zip.words(), from_files.words());
}

#[test]
fn the_snapshot_names_the_archive_and_its_sha256_as_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("download.zip");
    write_zip(&zip, &[("201.txt", AREA_201), ("212.txt", AREA_212)]);
    let (meta, _) = compile(&full(vec![zip.clone()]), chrono::Utc::now()).unwrap();
    let src = &meta.sources[0];
    assert_eq!(src.name, "download.zip");
    assert_eq!(src.lines, 5);
    let sha = sha256_hex(&std::fs::read(&zip).unwrap());
    assert_eq!(src.sha256, sha);
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn a_bad_line_in_one_member_rejects_the_whole_archive_naming_member_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("download.zip");
    write_zip(
        &zip,
        &[
            ("201.txt", AREA_201),
            ("212.txt", "212,5550143\n212,55501\n"),
        ],
    );
    let err = refusal(zip);
    assert!(err.contains("download.zip:212.txt:2"), "{err}");
    assert!(err.contains("212,55501"), "{err}");
}

#[test]
fn an_archive_without_files_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("empty.zip");
    write_zip(&zip, &[]);
    let err = refusal(zip);
    assert!(err.contains("holds no files"), "{err}");
}

#[test]
fn a_damaged_archive_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("download.zip");
    write_zip(&zip, &[("201.txt", AREA_201), ("212.txt", AREA_212)]);
    let mut bytes = std::fs::read(&zip).unwrap();
    bytes.truncate(bytes.len() - 30);
    std::fs::write(&zip, bytes).unwrap();
    assert!(compile(&full(vec![zip]), chrono::Utc::now()).is_err());
}

/// A member that expands to one endless line is refused at the line bound, not read whole.
#[test]
fn a_line_past_256_bytes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("download.zip");
    let endless = "2".repeat(10_000_000);
    write_zip(&zip, &[("201.txt", &endless)]);
    let err = refusal(zip);
    assert!(err.contains("download.zip:201.txt:1"), "{err}");
    assert!(err.contains("at most 256 bytes"), "{err}");
}

#[test]
fn callgate_lists_compile_reads_the_zip_and_writes_nothing_when_it_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let (good, bad) = (dir.path().join("good.zip"), dir.path().join("bad.zip"));
    write_zip(&good, &[("201.txt", AREA_201), ("212.txt", AREA_212)]);
    write_zip(&bad, &[("201.txt", "201,555\n")]);
    let compile = |zip: &Path, out: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_callgate"))
            .args([
                "lists", "compile", "--id", "national", "--kind", "national", "--full",
            ])
            .arg(zip)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap()
    };
    let out = dir.path().join("national.cgsnap");
    let ok = compile(&good, &out);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("5 entries"));
    let before = std::fs::read(&out).unwrap();
    let refused = compile(&bad, &out);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("bad.zip:201.txt:1"));
    assert_eq!(
        std::fs::read(&out).unwrap(),
        before,
        "the snapshot in place changed"
    );
}
