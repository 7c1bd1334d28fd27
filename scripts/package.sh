#!/usr/bin/env bash
# Build srvctl's Debian package or its RPM from release binaries. Both hold exactly what
# scripts/install.sh stages (DESTDIR), plus the licences; their scripts run the shipped
# /usr/libexec/srvctl/post-install and pre-remove (packaging/). Run on Debian: the RPM is built
# with Debian's rpmbuild (package rpm).
#
#   scripts/package.sh deb     # -> target/packages/srvctl_VERSION_ARCH.deb
#   scripts/package.sh rpm     # -> target/packages/srvctl-VERSION-1.ARCH.rpm
#
#   SRVCTL_BIN_DIR=DIR         binaries built elsewhere (default: a release build here)
#   SRVCTL_PACKAGE_DIR=DIR     where the package goes (default: target/packages)
#   SRVCTL_MAINTAINER='Name <address>'   the Debian package's Maintainer
#
# The version is Cargo.toml's, with its pre-release after a tilde (4.0.0-alpha.1 is
# 4.0.0~alpha.1), so that 4.0.0 sorts after it in both dpkg and rpm. Prints the package's path.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kind=${1:-}
case "$kind" in
deb | rpm) ;;
*)
    echo "usage: scripts/package.sh deb|rpm" >&2
    exit 2
    ;;
esac

bin_dir=${SRVCTL_BIN_DIR:-}
if [ -z "$bin_dir" ]; then
    echo "package: building release binaries…" >&2
    bash "$here/scripts/build-deps.sh" >&2
    cargo build --release --locked --manifest-path "$here/Cargo.toml" --bins >&2
    bin_dir=$here/target/release
fi
bin_dir=$(cd "$bin_dir" && pwd)
out=${SRVCTL_PACKAGE_DIR:-$here/target/packages}
mkdir -p "$out"
out=$(cd "$out" && pwd)

cargo_version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$here/Cargo.toml" | head -n 1)
[ -n "$cargo_version" ] || {
    echo "package: no version in Cargo.toml" >&2
    exit 1
}
version=${cargo_version/-/\~}

stage=$(mktemp -d "${TMPDIR:-/var/tmp}/srvctl-package.XXXXXX")
trap 'rm -rf "$stage"' EXIT

# The programs as distributions ship them: without debug information and symbols (both
# packages are built from these copies).
mkdir "$stage/bin"
for program in "$bin_dir"/*; do
    [ -f "$program" ] && [ -x "$program" ] && head -c 4 "$program" | grep -q ELF || continue
    strip --strip-unneeded --remove-section=.comment --remove-section=.note \
        -o "$stage/bin/$(basename "$program")" "$program"
done
bin_dir=$stage/bin

# The machine-readable copyright file of a Debian package: the MIT text in full, Apache-2.0
# by reference to the copy every Debian system has.
deb_copyright() {
    cat <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: srvctl

Files: *
Copyright: the srvctl authors
License: MIT or Apache-2.0

License: MIT
EOF
    sed -e 's/^$/./' -e 's/^/ /' "$here/LICENSE-MIT"
    cat <<'EOF'

License: Apache-2.0
 Licensed under the Apache License, Version 2.0 (the "License"); you may not use this
 file except in compliance with the License.
 .
 On Debian systems, the complete text of the Apache License, Version 2.0, is in
 /usr/share/common-licenses/Apache-2.0.
EOF
}

# The shared-library Depends of the ELF files under $1 (libc6 (>= ...), ...), as dpkg-shlibdeps
# computes them; it wants a debian/control, so it runs in a scratch directory with one.
deb_shlibs() {
    local dir=$stage/shlibs
    mkdir -p "$dir/debian"
    printf 'Source: srvctl\n\nPackage: srvctl\nArchitecture: any\n' > "$dir/debian/control"
    local elf=()
    mapfile -t elf < <(find "$1" -type f -perm -0100 -exec sh -c 'head -c 4 "$1" | grep -q ELF' sh {} \; -print)
    (cd "$dir" && dpkg-shlibdeps -O "${elf[@]}") | sed -n 's/^shlibs:Depends=//p'
}

build_deb() {
    local root=$stage/root arch
    arch=$(dpkg --print-architecture)
    DESTDIR=$root SRVCTL_BIN_DIR=$bin_dir bash "$here/scripts/install.sh" >&2
    deb_copyright > "$root/usr/share/doc/srvctl/copyright"
    chmod 0644 "$root/usr/share/doc/srvctl/copyright"

    install -d -m 0755 "$root/DEBIAN"
    install -m 0755 "$here"/packaging/deb/{postinst,prerm,postrm} "$root/DEBIAN/"
    # Every file under /etc is a conffile: an operator's edit survives upgrades.
    (cd "$root" && find etc -type f -printf '/%p\n' | sort) > "$root/DEBIAN/conffiles"
    local size shlibs
    size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
    shlibs=$(deb_shlibs "$root")
    sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@INSTALLED_SIZE@|$size|" \
        -e "s|@SHLIBS@|$shlibs|" \
        -e "s|@MAINTAINER@|${SRVCTL_MAINTAINER:-srvctl maintainers <maintainers@srvctl.invalid>}|" \
        "$here/packaging/deb/control" > "$root/DEBIAN/control"

    local deb=$out/srvctl_${version}_$arch.deb
    dpkg-deb --root-owner-group --build "$root" "$deb" >&2
    echo "$deb"
}

build_rpm() {
    local arch rpm
    arch=$(uname -m)
    rpmbuild -bb --quiet --target "$arch" \
        --define "_topdir $stage/rpm" \
        --define "srvctl_version $version" \
        --define "srvctl_source $here" \
        --define "srvctl_bin_dir $bin_dir" \
        "$here/packaging/rpm/srvctl.spec" >&2
    rpm=$(find "$stage/rpm/RPMS" -name "srvctl-$version-*.rpm")
    cp "$rpm" "$out/"
    echo "$out/$(basename "$rpm")"
}

"build_$kind"
