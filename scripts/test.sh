#!/usr/bin/env bash
# Set up and run every check of srvctl: formatting, lints, unit and integration tests
# (root-only tests drive real systemd-analyze, openvpn and systemd-networkd), the Debian
# package and the RPM (built from the release build; the RPM checked by rpmlint), and the
# end-to-end tests in real systemd hosts (one host, then a cluster of three, each installed
# from the Debian package).
#
#   bash scripts/test.sh          # everything
#   SRVCTL_SKIP_E2E=1 bash scripts/test.sh   # without the host-in-a-box test
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n== %s\n' "$*"; }

step "system packages"
bash scripts/build-deps.sh
bash scripts/test-deps.sh

step "rust components"
for component in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
done

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy"
cargo clippy --locked --all-targets -- -D warnings

step "cargo test"
cargo test --locked

step "packages: deb and rpm (rpmlint)"
# package.sh makes the release build (which the end-to-end tests use too).
deb=$(bash scripts/package.sh deb)
rpm=$(bash scripts/package.sh rpm)
dpkg-deb --info "$deb" >/dev/null
rpmlint -r packaging/rpm/srvctl.rpmlintrc packaging/rpm/srvctl.spec "$rpm"

if [ -z "${SRVCTL_SKIP_E2E:-}" ]; then
    # The boxes need a release build, a cached image and a copy of it per host: on a machine
    # short of disk, the test build (no longer needed) makes room for them.
    step "disk"
    df -h . /var/tmp
    free_kib=$(df -Pk . | awk 'NR == 2 { print $4 }')
    if ((free_kib < 20 * 1024 * 1024)); then
        echo "less than 20 GiB free: removing the test build (target/debug)"
        cargo clean --profile dev
    fi
    step "end to end: host in a box"
    bash tests/e2e/host-in-a-box.sh
    step "end to end: a cluster of three hosts in boxes"
    bash tests/e2e/cluster-in-boxes.sh
fi
