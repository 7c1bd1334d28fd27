#!/usr/bin/env bash
# Install the Debian packages that building srvctl needs beyond the Rust toolchain (run
# before `cargo build`; scripts/demo.sh, scripts/install.sh and scripts/test.sh do):
#
#   protobuf-compiler  protoc, which the etcd client crate runs at build time to compile
#                      etcd's gRPC API
#   libprotobuf-dev    the google/protobuf/*.proto files that etcd's API imports
#
# Idempotent and quick when both are there; installing needs root.
set -euo pipefail

packages=(protobuf-compiler libprotobuf-dev)

missing=()
for p in "${packages[@]}"; do
    if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "build-deps: building srvctl needs ${missing[*]}: run as root, or: apt-get install ${missing[*]}" >&2
    exit 1
fi
echo "build-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
