//! The code's shape, checked on the sources: the ordering core stays sans-IO (nothing in
//! `src/core` outside its tests uses actix, tokio, rdkafka or rocksdb, or reads a clock: time
//! comes in as an argument), and every module says what it is in a `//!` header.

use std::path::{Path, PathBuf};

fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The non-test part of a core source file: test files are skipped, and a file's `#[cfg(test)]`
/// module (last, by this code base's convention) is cut off.
fn production_code(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    if name == "tests.rs" || name.ends_with("_tests.rs") {
        return None;
    }
    let text = std::fs::read_to_string(path).unwrap();
    let end = text.find("#[cfg(test)]").unwrap_or(text.len());
    Some(text[..end].to_owned())
}

#[test]
fn the_core_uses_no_runtime_broker_storage_or_clock() {
    const FORBIDDEN: &[&str] = &[
        "actix",
        "tokio",
        "rdkafka",
        "rocksdb",
        "Instant::now",
        "SystemTime::now",
        "OffsetDateTime::now",
        "UNIX_EPOCH.elapsed",
        "std::thread::sleep",
    ];
    let mut found = Vec::new();
    let files = sources(&root().join("src/core"));
    assert!(files.len() > 10, "src/core has its modules");
    for path in files {
        let Some(code) = production_code(&path) else { continue };
        for (n, line) in code.lines().enumerate() {
            let code_part = line.split("//").next().unwrap_or("");
            for word in FORBIDDEN {
                if code_part.contains(word) {
                    found.push(format!("{}:{}: {}", path.strip_prefix(root()).unwrap().display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(found.is_empty(), "src/core must stay sans-IO; found:\n{}", found.join("\n"));
}

#[test]
fn every_module_has_a_header() {
    let missing: Vec<_> = sources(&root().join("src"))
        .into_iter()
        .chain(sources(&root().join("tests")))
        .chain(sources(&root().join("benches")))
        .filter(|p| !std::fs::read_to_string(p).unwrap().trim_start().starts_with("//!"))
        .map(|p| p.strip_prefix(root()).unwrap().display().to_string())
        .collect();
    assert!(missing.is_empty(), "modules without a //! header saying what they are: {missing:?}");
}
