#!/usr/bin/env bash
# End-to-end test of a srvctl cluster: three real systemd hosts in boxes (tests/e2e/lib/box.sh)
# on one bridge, each with srvctl installed from its Debian package and its own etcd member
# (srvctl-etcd.service) and sync service (srvctl-sync.service). The hosts join the cluster's
# trust root by CSR (no CA key leaves h1), then the checks of tests/e2e/lib/cluster.sh run:
# concurrent writes on two hosts, one datastore on three, the same UIDs everywhere, and the
# faults (a member down, no quorum, members coming back). Prints what it measured. Run as
# root:
#
#   bash tests/e2e/cluster-in-boxes.sh
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/box.sh
. "$repo/tests/e2e/lib/box.sh"
# shellcheck source-path=SCRIPTDIR source=lib/srvctl.sh
. "$repo/tests/e2e/lib/srvctl.sh"
# shellcheck source-path=SCRIPTDIR source=lib/cluster.sh
. "$repo/tests/e2e/lib/cluster.sh"
SRVCTL_REPO=$repo

fail() {
    echo "cluster-in-boxes: FAIL: $*" >&2
    local h
    for h in $CLUSTER_HOSTS; do
        box_use "$h" 2>/dev/null || continue
        echo "---- $h" >&2
        box_sh 'sc cluster status; systemctl --no-pager status srvctl-etcd srvctl-sync | head -40
                journalctl -b --no-pager -n 30 -u srvctl-etcd -u srvctl-sync -u srvctl-regenerate' >&2 || true
    done
    exit 1
}
step() { echo "== $*" >&2; }
declare -a figures=()
figure() { figures+=("$1: $2"); }

step "dependencies and the host rootfs"
box_deps
BOX_EXTRA_PACKAGES=$SRVCTL_BOX_PACKAGES box_rootfs

step "srvctl release build"
srvctl_build

step "three hosts on one bridge"
cluster_boot || fail "the three hosts did not come up"

step "the trust root: h2 and h3 join by CSR"
cluster_join || fail "joining the cluster's trust root"

step "etcd members and sync services"
cluster_start || fail "the cluster datastore did not form"
figure "cluster formed (etcd healthy on three hosts)" "$CLUSTER_FORM_SECONDS s"

cluster_check

step "site image (sc regenerate rootfs debian, cached)"
srvctl_site_image || fail "the site image has no srvctl-site.service"
cluster_check_sites

echo "cluster-in-boxes: measured" >&2
for f in "${figures[@]}"; do echo "  $f" >&2; done
echo "cluster-in-boxes: 1 passed, 0 failed"
