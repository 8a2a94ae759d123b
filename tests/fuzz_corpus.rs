//! Replays every committed fuzz corpus file (`fuzz/corpus/<target>/*`) through the same
//! body the fuzz target runs, on stable Rust. A crash found once stays fixed.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        if path.is_file() {
            let data = std::fs::read(&path).expect("corpus file");
            run(&data);
            n += 1;
        }
    }
    assert!(
        n > 0,
        "corpus for {target} is empty: commit at least a seed"
    );
}

macro_rules! corpus_tests {
    ($($name:ident),* $(,)?) => {
        $( #[test] fn $name() { replay(stringify!($name), tracecast::fuzzing::$name::run); } )*
    };
}

corpus_tests!(
    frame,
    http_head,
    client_message,
    ingest_body,
    jwt,
    log_record,
    config,
    condition
);
