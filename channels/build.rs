//! Compiles the protobuf definitions in `proto/` with protox (pure Rust, no
//! system `protoc`) and generates prost types for them.

use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=proto");
    let files = ["common.proto", "identities.proto", "bftorderer.proto"];
    let descriptors = protox::compile(files, ["proto"])?;
    prost_build::Config::new()
        .type_attribute(
            ".bftorderer",
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default, deny_unknown_fields)]",
        )
        .compile_fds(descriptors)?;
    Ok(())
}
