#!/usr/bin/env bash
# Installs what building the project needs on a fresh machine: a C++
# compiler and libclang (RocksDB and its bindings), pkg-config, protoc
# (the etcd client of the benches compiles etcd's .proto files with it;
# our own .proto files need none), and a Rust toolchain. Safe to run again: it installs only what is missing.
set -euo pipefail

missing=()
command -v c++ >/dev/null 2>&1 || missing+=(g++)
command -v clang >/dev/null 2>&1 || missing+=(clang)
# bindgen (via clang-sys) needs the unversioned libclang.so or libclang-N.so
# that only the -dev package ships; the runtime libclang-cpp does not count.
has_libclang() {
  [[ -n "${LIBCLANG_PATH:-}" ]] && return 0
  compgen -G '/usr/lib/llvm-*/lib/libclang.so' >/dev/null ||
    compgen -G '/usr/lib/*/libclang.so' >/dev/null ||
    compgen -G '/usr/lib/*/libclang-[0-9]*.so' >/dev/null ||
    compgen -G '/usr/lib64/libclang.so' >/dev/null
}
has_libclang || missing+=(libclang-dev)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v protoc >/dev/null 2>&1 || [[ -n "${PROTOC:-}" ]] || missing+=(protobuf-compiler)
command -v curl >/dev/null 2>&1 || missing+=(curl ca-certificates)

if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: missing system packages: ${missing[*]}" >&2
    echo "setup: install them (Debian/Ubuntu: sudo apt-get install ${missing[*]}) and run again" >&2
    exit 1
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: installing the Rust toolchain with rustup"
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component clippy,rustfmt
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi
rustup component add clippy rustfmt >/dev/null 2>&1 || true
