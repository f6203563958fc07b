//! Compiles `src/proto/**/*.proto` with prost (and the AtomicBroadcast service with tonic), using the protoc that ships in the
//! `protoc-bin-vendored` crate (a fresh machine has no system protoc), and generates serde
//! implementations that follow the canonical protobuf JSON mapping with pbjson; and records the
//! git commit being built as `OSN_GIT_COMMIT` (what `GET /version` answers).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    git_commit();
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let include = protoc_bin_vendored::include_path()?;
    std::env::set_var("PROTOC", protoc);

    let root = PathBuf::from("src/proto");
    let files = [
        "common/common.proto",
        "common/configtx.proto",
        "common/configuration.proto",
        "common/policies.proto",
        "msp/identities.proto",
        "msp/msp_config.proto",
        "msp/msp_principal.proto",
        "peer/configuration.proto",
        "orderer/ab.proto",
        "orderer/kafka.proto",
        "orderer/configuration.proto",
        "osn/api.proto",
    ];
    let paths: Vec<PathBuf> = files.iter().map(|f| root.join(f)).collect();
    for p in &paths {
        println!("cargo:rerun-if-changed={}", p.display());
    }

    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptors = out.join("descriptors.bin");
    // The gRPC service of orderer/ab.proto (AtomicBroadcast): tonic's server and client, over
    // the same message types.
    let grpc = tonic_prost_build::configure().build_server(true).build_client(true).service_generator();
    prost_build::Config::new()
        .service_generator(grpc)
        .file_descriptor_set_path(&descriptors)
        .compile_well_known_types()
        .extern_path(".google.protobuf", "::pbjson_types")
        .bytes(["."])
        .compile_protos(&paths, &[root, include])?;

    pbjson_build::Builder::new()
        .register_descriptors(&std::fs::read(&descriptors)?)?
        .build(&[".common", ".msp", ".orderer", ".osn", ".peer"])?;
    Ok(())
}

/// Exports `OSN_GIT_COMMIT`: the variable of the same name when the build sets it (a build from
/// a source archive), else `git rev-parse --short HEAD`, else `unknown` (no git, or not a
/// repository). Never fails the build. Reruns when HEAD moves: on the files git keeps HEAD and
/// the checked-out branch in (asked of git, so a worktree's own HEAD is the one watched), those
/// of them that exist (cargo reruns every time for a file that does not).
fn git_commit() {
    println!("cargo:rerun-if-env-changed=OSN_GIT_COMMIT");
    if let Some(commit) = std::env::var("OSN_GIT_COMMIT").ok().filter(|c| !c.is_empty()) {
        println!("cargo:rustc-env=OSN_GIT_COMMIT={commit}");
        return;
    }
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()));
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git").args(args).current_dir(&dir).output().ok()?;
        let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
        (out.status.success() && !text.is_empty()).then_some(text)
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]);
    if commit.is_some() {
        let mut watched = vec![git(&["rev-parse", "--git-path", "HEAD"])];
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watched.push(git(&["rev-parse", "--git-path", &branch]));
            watched.push(git(&["rev-parse", "--git-path", "packed-refs"]));
        }
        for path in watched.into_iter().flatten().map(|p| dir.join(Path::new(&p))) {
            if path.is_file() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    println!("cargo:rustc-env=OSN_GIT_COMMIT={}", commit.as_deref().unwrap_or("unknown"));
}
