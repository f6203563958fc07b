//! The HTTP edge against its contract: schemathesis, an OpenAPI contract tester (PyPI, pinned in
//! `tests/contract/requirements.txt`, installed by `scripts/install-schemathesis`, which
//! `scripts/test` runs), tries every operation of the API document with every check against
//! `osn dev`, signed as a reader of devchannel, and finds nothing: no server error, no answer
//! the document does not list, no request the document calls valid refused or one it calls
//! invalid taken, HTTP's conventions for 401/405/`Allow`. The one exception it is told about,
//! and why, is in `tests/contract/schemathesis.toml`.

use std::path::{Path, PathBuf};
use std::process::Command;

use osn::cli::client::read_authorization;
use osn::identity::dev::dev_client_identity;
use osn::identity::SigningIdentity;

use crate::cli::start_dev;
use crate::harness::crypto;

/// The run's seed, so that the suite tries the same requests every time (another seed is a
/// different set of requests: `OSN_CONTRACT_SEED` chooses one, to search further by hand).
const SEED: &str = "20261201";

fn schemathesis() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("scripts/install-schemathesis")).arg("--path").output().unwrap();
    let bin = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert!(
        bin.is_file(),
        "schemathesis is not installed at {}: run scripts/install-schemathesis (scripts/test does)",
        bin.display()
    );
    bin
}

#[test]
fn schemathesis_finds_nothing_in_any_operation() {
    let bin = schemathesis();
    let (_dev, url, _) = start_dev(&[], None);
    let client = SigningIdentity::load(&dev_client_identity(&crypto().root.join("dev"))).unwrap();
    let authorization = read_authorization(&client, "devchannel");
    let contract = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/contract");
    // Schemathesis keeps its example database in the working directory: a temporary one.
    let work = tempfile::tempdir().unwrap();
    let seed = std::env::var("OSN_CONTRACT_SEED").unwrap_or_else(|_| SEED.to_owned());
    let out = Command::new(bin)
        .current_dir(work.path())
        .env("PYTHONPATH", &contract)
        .env("NO_COLOR", "1")
        .arg("--config-file")
        .arg(contract.join("schemathesis.toml"))
        .args(["run", &format!("{url}/openapi.json"), "--checks", "all", "--max-examples", "50"])
        .args(["--workers", "1", "--seed", &seed, "-H", &format!("Authorization: {authorization}")])
        .output()
        .expect("run schemathesis");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis (seed {seed}) found failures against osn dev:\n{report}");

    // It did try every operation the document has, but `GET /openapi.json`, which it loads the
    // document from and leaves out (tests/it/openapi.rs checks that one byte for byte).
    let doc: serde_json::Value = serde_json::from_str(osn::http::docs::OPENAPI).unwrap();
    let methods = ["get", "put", "post", "delete", "patch", "head", "options"];
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().keys().filter(|k| methods.contains(&k.as_str())).count())
        .sum::<usize>()
        - 1;
    assert!(report.contains(&format!("Tested: {operations}")), "not every one of {operations} operations:\n{report}");
}
