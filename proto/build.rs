//! Compiles the `.proto` files with protox (pure Rust, no `protoc` needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/kv.proto", "proto/raft.proto", "proto/shardkv.proto"];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    // Maps as BTreeMap: a message encodes to the same bytes every time
    // (the simulator digests and chunks encoded state).
    tonic_prost_build::configure()
        .bytes(".")
        .btree_map(".")
        .compile_fds(descriptors)?;
    Ok(())
}
