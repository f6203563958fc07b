//! Compiles `src/proto/**/*.proto` with prost, using the protoc that ships in the
//! `protoc-bin-vendored` crate (a fresh machine has no system protoc), and generates serde
//! implementations that follow the canonical protobuf JSON mapping with pbjson.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let include = protoc_bin_vendored::include_path()?;
    std::env::set_var("PROTOC", protoc);

    let root = PathBuf::from("src/proto");
    let files = [
        "common/common.proto",
        "msp/identities.proto",
        "orderer/ab.proto",
        "orderer/kafka.proto",
        "orderer/configuration.proto",
        "osn/config.proto",
        "osn/api.proto",
    ];
    let paths: Vec<PathBuf> = files.iter().map(|f| root.join(f)).collect();
    for p in &paths {
        println!("cargo:rerun-if-changed={}", p.display());
    }

    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptors = out.join("descriptors.bin");
    prost_build::Config::new()
        .file_descriptor_set_path(&descriptors)
        .compile_well_known_types()
        .extern_path(".google.protobuf", "::pbjson_types")
        .bytes(["."])
        .compile_protos(&paths, &[root, include])?;

    pbjson_build::Builder::new()
        .register_descriptors(&std::fs::read(&descriptors)?)?
        .build(&[".common", ".msp", ".orderer", ".osn"])?;
    Ok(())
}
