#!/usr/bin/env bash
# Benchmark (not in CI): N site containers on one real systemd host in a box. Adds N sites
# (each `sc add-ve` returns once its container has booted), reboots the host, and measures
#   - the time from the host's systemd being up again to the last site answering HTTP,
#   - the proportional set size (PSS) of an idle container, the mean over all of them,
#   - the time of `sc status` with all N running (mean of 5).
# /var/lib/machines is a loop-mounted btrfs, so that each clone is a snapshot (N copies of the
# image would not fit the disk of a CI machine). Run as root:
#
#   bash tests/e2e/density-bench.sh [N]      # N containers (50)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/box.sh
. "$repo/tests/e2e/lib/box.sh"
# shellcheck source-path=SCRIPTDIR source=lib/srvctl.sh
. "$repo/tests/e2e/lib/srvctl.sh"
SRVCTL_REPO=$repo
n=${1:-50}

fail() {
    echo "density-bench: FAIL: $*" >&2
    box_sh 'sc status; journalctl -b --no-pager -n 40 -u "systemd-nspawn@*"' >&2 || true
    box_diag
    exit 1
}

box_deps
BOX_EXTRA_PACKAGES=$SRVCTL_BOX_PACKAGES box_rootfs
srvctl_build
srvctl_site_image || fail "no site image"

work=$(mktemp -d /var/tmp/srvctl-density-bench.XXXXXX)
box_defer rm -rf "$work"
truncate -s 20G "$work/machines.img"
mkfs.btrfs -q "$work/machines.img"
mkdir -p "$work/machines"
mount -o loop "$work/machines.img" "$work/machines"
box_defer umount -l "$work/machines"

# The box's /proc/sys is read-only: raise the limits on the host of the box.
"$repo/target/release/srvctl-regenerate" --raise-limits
box_start h1.test "--bind=$work/machines:/var/lib/machines"
srvctl_install_in_box
srvctl_image_in_box
box_run sc add-user bench >/dev/null

names=()
for i in $(seq 1 "$n"); do names+=("d$i.example.com"); done
t=${EPOCHREALTIME/./}
srvctl_add_sites bench "${names[@]}" || fail "sc add-ve failed"
add_seconds=$(box_elapsed "$t")
silent=$(srvctl_wait_sites 120 "${names[@]}") || fail "not answering: $silent"

box_reboot
t=${EPOCHREALTIME/./}
silent=$(srvctl_wait_sites 600 "${names[@]}") || fail "after reboot, not answering: $silent"
boot_seconds=$(box_elapsed "$t")
failed=$(box_run systemctl list-units --failed --no-legend 'systemd-nspawn@*')
[ -z "$failed" ] || fail "failed after the reboot: $failed"
sleep 20 # let the containers settle into idle

pss_kib=$(box_sh '
    for n in "$@"; do
        cg=$(systemctl show "systemd-nspawn@$n.service" -p ControlGroup --value)
        find "/sys/fs/cgroup$cg" -name cgroup.procs -exec cat {} + | sort -u | while read -r pid; do
            awk "/^Pss:/ {print \$2}" "/proc/$pid/smaps_rollup" 2>/dev/null
        done
    done | awk -v n=$# "{s += \$1} END {printf \"%d\", s / n}"' "${names[@]}")

status_ms=$(box_sh '
    t0=$(date +%s%N)
    for i in 1 2 3 4 5; do sc status >/dev/null; done
    echo $(( ($(date +%s%N) - t0) / 5000000 ))')
running=$(box_run sc status --json | grep -c '"state": "running"')
[ "$running" = "$n" ] || fail "sc status says $running running, expected $n"

echo "density-bench: $n site containers on one host (box, $(nproc) CPUs)"
echo "  sc add-ve of all $n (each until booted): $add_seconds s"
echo "  reboot: host up to the last site answering HTTP: $boot_seconds s"
echo "  PSS of an idle container (mean): $((pss_kib / 1024)) MiB"
echo "  sc status with $n running (mean of 5): $status_ms ms"
