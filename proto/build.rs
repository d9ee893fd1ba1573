//! Compiles the protos with protox (a pure-Rust protobuf compiler, so no system `protoc` is needed) and
//! generates the prost messages and tonic services into `OUT_DIR`.

use std::path::Path;

/// The proto files, relative to `proto/`. Add a file here and a module in `lib.rs` to ship a new package.
const PROTOS: &[&str] = &["alys/burnfeed/v1/burnfeed.proto", "governance/v1/governance.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new("proto");
    println!("cargo:rerun-if-changed={}", root.display());
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={}", root.join(proto).display());
    }
    let descriptors = protox::compile(PROTOS, [root])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .emit_rerun_if_changed(false)
        .compile_fds(descriptors)?;
    Ok(())
}
