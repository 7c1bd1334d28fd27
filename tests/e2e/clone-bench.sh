#!/usr/bin/env bash
# Benchmark: time from `sc add-ve` to the site answering HTTP at its address, for each way a
# root filesystem can be cloned: a plain copy (ext4), a btrfs snapshot and an xfs reflink copy,
# each on a loop-mounted file system bound into a real systemd host in a box as
# /var/lib/machines. Also the memory of an idle container. Run as root:
#
#   bash tests/e2e/clone-bench.sh [ROUNDS]      # ROUNDS containers per file system (3)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/box.sh
. "$repo/tests/e2e/lib/box.sh"
# shellcheck source-path=SCRIPTDIR source=lib/srvctl.sh
. "$repo/tests/e2e/lib/srvctl.sh"
SRVCTL_REPO=$repo
rounds=${1:-3}

fail() {
    echo "clone-bench: FAIL: $*" >&2
    box_diag
    exit 1
}

for pkg in btrfs-progs xfsprogs; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null; }
done
box_deps
BOX_EXTRA_PACKAGES="btrfs-progs xfsprogs haproxy" box_rootfs
srvctl_build
srvctl_site_image || fail "no site image"

work=$(mktemp -d /var/tmp/srvctl-clone-bench.XXXXXX)
box_defer rm -rf "$work"
declare -a results=()

for fs in ext4 btrfs xfs; do
    img=$work/$fs.img mnt=$work/$fs
    truncate -s 4G "$img"
    mkdir -p "$mnt"
    case $fs in
        ext4) mkfs.ext4 -q "$img" ;;
        btrfs) mkfs.btrfs -q "$img" ;;
        xfs) mkfs.xfs -q -m reflink=1 "$img" ;;
    esac
    mount -o loop "$img" "$mnt"
    box_defer umount -l "$mnt"
    box_start h1.test "--bind=$mnt:/var/lib/machines"
    srvctl_install_in_box
    srvctl_image_in_box
    times=()
    method=
    for i in $(seq 1 "$rounds"); do
        name=bench$i.example.com
        t=${EPOCHREALTIME/./}
        out=$(box_run sc add-ve "$name" 2>&1) || fail "add-ve on $fs: $out"
        ip=$(box_run sc get container "$name" ip)
        srvctl_wait_http "$name" "$ip" 120 || fail "$name on $fs does not answer"
        times+=("$(box_elapsed "$t")")
        method=$(sed -n 's/.* by \(.*\) in .*/\1/p' <<<"$out")
    done
    results+=("$fs ($method): add-ve to HTTP ${times[*]} s")
    box_stop
    umount "$mnt"
done

echo "clone-bench: time from sc add-ve to the site answering HTTP (each container's first boot)"
for r in "${results[@]}"; do echo "  $r"; done
