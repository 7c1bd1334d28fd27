#!/usr/bin/env bash
# srvctl's main job, end to end: a site in a real container, served over HTTPS by the host's
# haproxy and reached with SSH on port 2222 as USER_CONTAINER_LOGIN. It builds srvctl, boots a
# real systemd host in a box (systemd-nspawn; no systemd needed on this machine), installs
# srvctl there from its Debian package (scripts/package.sh deb), sets the host up with
# `sc update-install`, adds a reseller, a user with an SSH key and the user's site, then shows the site answering HTTPS and a login into its container. The box is stopped
# at the end; nothing on this machine but the caches under /var/cache/srvctl-e2e is left.
# Run as root on Debian (the first run builds the host and site images with debootstrap from
# a Debian mirror: a few minutes):
#
#   bash scripts/demo.sh               # the site in a box
#   bash scripts/demo.sh --scratch [DIR]
#                                      # a tour of the commands on a scratch root instead:
#                                      # no systemd, no root after the build packages
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "${1:-}" = --scratch ]; then
    shift
    exec bash scripts/demo-scratch.sh "$@"
fi

repo=$PWD
# shellcheck source=../tests/e2e/lib/box.sh
. tests/e2e/lib/box.sh
# shellcheck source=../tests/e2e/lib/srvctl.sh
. tests/e2e/lib/srvctl.sh
SRVCTL_REPO=$repo

site=web.example.com
ssh_opts="-p 2222 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR"
say() { printf '\n== %s\n' "$*"; }
show() { printf '\n[h1.test]# %s\n' "$*"; box_sh "$*"; }
fail() {
    echo "demo: FAIL: $*" >&2
    box_diag || true
    exit 1
}

say "build srvctl and the images (cached after the first run)"
bash scripts/build-deps.sh
box_deps
BOX_EXTRA_PACKAGES=$SRVCTL_BOX_PACKAGES box_rootfs
srvctl_build
srvctl_site_image || fail "no site image"
# The box shares this machine's kernel: the limits many containers need are raised here.
target/release/srvctl-regenerate --raise-limits

say "boot the host h1.test and install srvctl from its Debian package (scripts/package.sh deb)"
box_start h1.test
srvctl_install_in_box
say "set the host up: sc update-install (packages, limits, firewall, srvctl's units)"
show sc update-install --hostname h1.test || fail "sc update-install"
srvctl_image_in_box

say "a reseller, a user with an SSH key, and the user's site"
box_sh 'mkdir -p /root/demo && ssh-keygen -q -t ed25519 -N "" -C bob@demo -f /root/demo/bob'
show sc add-reseller alice
show sc add-user bob --reseller alice
show sc add-publickey bob /root/demo/bob.pub
show sc add-ve "$site" --user bob
ip=$(box_run sc get container "$site" ip)
srvctl_wait_http "$site" "$ip" 60 || fail "$site does not answer at $ip"
show sc status

say "the site over HTTPS through the host's haproxy (a certificate of the host's site issuer)"
https="curl -fsS --resolve $site:443:127.0.0.1 --cacert /var/lib/srvctl/pki/ca.crt https://$site/"
deadline=$((SECONDS + 60))
until box_sh "$https" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "no HTTPS answer from https://$site/"
    sleep 0.5
done
show "$https -o /dev/null -w 'https://$site/ answered %{http_code} over HTTP/%{http_version}, certificate verified\n'"
show "$https"

say "bob logs into his container through the SSH gateway on port 2222 (sc update-install enabled it)"
show ssh $ssh_opts -i /root/demo/bob "bob_${site}_root@127.0.0.1" "'echo logged in to \$(hostname) as \$(id -un)'" ||
    fail "no login through the gateway"

say "done: the box is stopped now (BOX_KEEP=1 keeps its files)"
