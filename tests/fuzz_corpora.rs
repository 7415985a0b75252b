//! The fuzz corpora (`fuzz/corpus/<target>/`) as regression tests on the stable toolchain: every
//! input the fuzzers kept (and every crash they ever found, once fixed) runs through the same
//! entry points as `cargo fuzz run <target>` and must not panic.

fn run(target: &str, f: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        f(&std::fs::read(&p).unwrap());
        n += 1;
    }
    assert!(n > 0, "{}: empty corpus", dir.display());
}

#[test]
fn sip_message_corpus() {
    run("sip_message", callgate::fuzzing::sip_message);
}

#[test]
fn list_file_corpus() {
    run("list_file", callgate::fuzzing::list_file);
}

#[test]
fn snapshot_body_corpus() {
    run("snapshot_body", callgate::fuzzing::snapshot_body);
}

#[test]
fn config_text_corpus() {
    run("config_text", callgate::fuzzing::config_text);
}

#[test]
fn call_flow_corpus() {
    run("call_flow", callgate::fuzzing::call_flow);
}
