#!/usr/bin/env bash
# End-to-end test of srvctl on a real systemd host: boots a Debian host in a box
# (tests/e2e/lib/box.sh), installs srvctl's Debian package into it (scripts/package.sh deb,
# dpkg -i), sets the host up with `sc update-install` (twice: the second run has nothing to
# change), creates two site
# containers whose names share a 14-character prefix, checks that both boot and answer HTTP at
# their plan addresses, adds 18 more (20 in all: more than the 16 the kernel's default inotify
# limit holds) after checking that srvctl raised the host limits, reboots the host and checks
# that all 20 come back by themselves, destroys one
# and checks nothing of it remains; then the tenants' checks (tests/e2e/lib/tenants.sh): users
# acting through the privileged service, their scopes, SSH keys and the SSH gateway; then
# `sc diagnose` with five planted faults (tests/e2e/lib/diagnose.sh). Prints what it measured.
# Run as root:
#
#   bash tests/e2e/host-in-a-box.sh
#
# The host rootfs and the site image (built with `sc regenerate rootfs debian`) are cached
# under /var/cache/srvctl-e2e.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/box.sh
. "$repo/tests/e2e/lib/box.sh"
# shellcheck source-path=SCRIPTDIR source=lib/srvctl.sh
. "$repo/tests/e2e/lib/srvctl.sh"
# shellcheck source-path=SCRIPTDIR source=lib/tenants.sh
. "$repo/tests/e2e/lib/tenants.sh"
# shellcheck source-path=SCRIPTDIR source=lib/diagnose.sh
. "$repo/tests/e2e/lib/diagnose.sh"
SRVCTL_REPO=$repo

fail() {
    echo "host-in-a-box: FAIL: $*" >&2
    box_sh 'sc status; journalctl -b --no-pager -n 40 -u "systemd-nspawn@*"
            journalctl -b --no-pager -n 30 -u srvctl-regenerate -u srvctl.service' >&2 || true
    box_diag
    exit 1
}
step() { echo "== $*" >&2; }
declare -a figures=()
figure() { figures+=("$1: $2"); }

one=longsitenameaa-one.example.com
two=longsitenameaa-two.example.com

step "dependencies and the host rootfs"
box_deps
BOX_EXTRA_PACKAGES=$SRVCTL_BOX_PACKAGES box_rootfs

step "srvctl release build"
srvctl_build

step "site image (sc regenerate rootfs debian, cached)"
srvctl_site_image || fail "the site image has no srvctl-site.service"
figure "site image build" "$SRVCTL_IMAGE_SECONDS"

step "boot h1.test"
# The box's kernel is this machine's, and its /proc/sys is read-only: srvctl raises the limits
# many containers hit (src/containers/limits.rs) here, on the host of the box, as install.sh
# does on a host. (A writable /proc/sys in the box would also make /sys writable, and
# systemd-networkd then waits for a udev that is not there.)
"$repo/target/release/srvctl-regenerate" --raise-limits
box_start h1.test
figure "host boot" "$BOX_BOOT_SECONDS s"

step "install srvctl's Debian package"
t=${EPOCHREALTIME/./}
srvctl_install_in_box || fail "the Debian package did not build or install"
figure "Debian package built and installed" "$(box_elapsed "$t") s"
[ "$(box_run dpkg-query -W -f='${Status} ${Version}' srvctl)" = "install ok installed $(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/Cargo.toml" | head -n 1 | sed 's/-/~/')" ] ||
    fail "dpkg does not have srvctl installed at Cargo.toml's version"
box_run test -x /usr/lib/systemd/system-generators/srvctl-generator || fail "generator not installed"
# The postinst ran the shared post-install: the socket listens and tmpfiles.d made the directories.
box_run systemctl is-active --quiet srvctl.socket || fail "srvctl.socket does not listen after dpkg -i"
box_run test -d /run/srvctl -a -d /var/lib/srvctl -a -d /etc/srvctl || fail "srvctl's directories are missing"
srvctl_update_install_twice || fail "sc update-install"
figure "sc update-install" "$UPDATE_INSTALL_FIGURES"
t=${EPOCHREALTIME/./}
srvctl_image_in_box
figure "image copy into the host" "$(box_elapsed "$t") s"
# The image's boot has no ordering cycle (systemd would break one by dropping a job, such as
# the start of sshd's socket).
out=$(box_run systemd-analyze --root=/var/lib/machines/.srvctl-images/debian verify multi-user.target 2>&1 || true)
! grep -i 'ordering cycle' <<<"$out" || fail "the site image's units have an ordering cycle: $out"
# The generator must be what enables machines.target (Debian enables it on install).
box_run rm -f /etc/systemd/system/multi-user.target.wants/machines.target

step "accounts"
box_run sc add-reseller alice
box_run sc add-user bob --reseller alice
box_run getent passwd bob | grep -q ':20257:20257:' || fail "bob does not resolve through userdb with UID 20257"

step "two containers"
for name in "$one" "$two"; do
    t=${EPOCHREALTIME/./}
    out=$(box_run sc add-ve "$name" --user bob) || fail "sc add-ve $name"
    ip=${out##* }
    srvctl_wait_http "$name" "$ip" 60 || fail "$name does not answer HTTP at $ip"
    figure "add-ve to HTTP ($name, first boot)" "$(box_elapsed "$t") s"
done
ip_one=$(box_run sc get container "$one" ip)
ip_two=$(box_run sc get container "$two" ip)
[ "$ip_one" = 10.17.1.2 ] && [ "$ip_two" = 10.17.1.3 ] || fail "addresses $ip_one $ip_two, expected 10.17.1.2 10.17.1.3"
for name in "$one" "$two"; do
    box_run machinectl show "$name" -p State --value | grep -qx running || fail "machinectl does not see $name running"
done
box_run sc status
status_json=$(box_run sc status --json)
[ "$(grep -c '"state": "running"' <<<"$status_json")" = 2 ] || fail "sc status does not say both are running: $status_json"
[ "$(box_run sc "$one" exec cat /etc/hostname)" = "$one" ] || fail "sc NAME exec: wrong hostname inside"
set +e; box_run sc "$one" exec sh -c 'exit 7'; code=$?; set -e
[ "$code" = 7 ] || fail "sc NAME exec passed exit code $code, expected 7"
# Memory of the idle container: the proportional set size (shared pages split fairly) of every
# process in its cgroup, which works on cgroup v1 and v2 alike.
memory_kib=$(box_sh '
    cg=$(systemctl show "systemd-nspawn@$1.service" -p ControlGroup --value)
    [ -n "$cg" ] || { echo 0; exit; }
    for base in /sys/fs/cgroup/unified /sys/fs/cgroup; do
        [ -d "$base$cg" ] && { find "$base$cg" -name cgroup.procs -exec cat {} + ; break; }
    done | sort -u | while read -r pid; do
        awk "/^Pss:/ {print \$2}" "/proc/$pid/smaps_rollup" 2>/dev/null
    done | awk "{s += \$1} END {print s + 0}"' "$one")
figure "memory of an idle container (PSS)" "$((memory_kib / 1024)) MiB"
[ "$memory_kib" -gt 1024 ] || fail "could not measure the memory of $one"

step "host limits and 18 more containers (20 in all)"
instances=$(box_run cat /proc/sys/fs/inotify/max_user_instances)
[ "$instances" -ge 16384 ] || fail "fs.inotify.max_user_instances is $instances: srvctl did not raise it"
box_run grep -q '^# fs.inotify.max_user_instances\|^fs.inotify.max_user_instances = 16384$' \
    /run/sysctl.d/60-srvctl-limits.conf || fail "no inotify floor in /run/sysctl.d/60-srvctl-limits.conf"
more=()
for i in $(seq 3 20); do more+=("site$i.example.com"); done
t=${EPOCHREALTIME/./}
srvctl_add_sites bob "${more[@]}" || fail "sc add-ve of one of ${more[*]} failed"
figure "18 more sites added (add-ve returns once each has booted)" "$(box_elapsed "$t") s"
silent=$(srvctl_wait_sites 60 "$one" "$two" "${more[@]}") || fail "sites not answering HTTP: $silent"
[ "$(box_run sc status --json | grep -c '"state": "running"')" = 20 ] || fail "sc status does not say 20 are running"

step "HTTPS through the host's haproxy"
for name in "$one" "$two"; do
    page=$(box_run curl -fsS --max-time 5 --resolve "$name:443:127.0.0.1" \
        --cacert /var/lib/srvctl/pki/ca.crt "https://$name/") || fail "no HTTPS answer for $name through haproxy"
    grep -q "<h1>$name</h1>" <<<"$page" || fail "haproxy served the wrong page for $name: $page"
done
location=$(box_run curl -sS -o /dev/null -w '%{redirect_url}' --resolve "$one:80:127.0.0.1" "http://$one/")
[ "$location" = "https://$one/" ] || fail "http://$one/ redirects to '$location', expected https"
headers=$(box_run curl -fsS -o /dev/null -D - --resolve "$one:443:127.0.0.1" \
    --cacert /var/lib/srvctl/pki/ca.crt "https://$one/")
grep -qi '^strict-transport-security: max-age=31536000' <<<"$headers" || fail "no HSTS on https://$one/: $headers"
grep -qi '^x-content-type-options: nosniff' <<<"$headers" || fail "no security headers on https://$one/: $headers"
srvctl_front_owned || fail "haproxy does not run srvctl's front from its drop-in"

step "second regenerate changes nothing"
box_run srvctl-regenerate | grep -q "nothing to change" || fail "a second regenerate changed something"

step "reboot the host"
box_reboot
[ "$(box_run systemctl is-active srvctl-regenerate.service)" != failed ] || fail "srvctl-regenerate failed at boot"
t=${EPOCHREALTIME/./}
silent=$(srvctl_wait_sites 180 "$one" "$two" "${more[@]}") || fail "after reboot, not answering HTTP: $silent"
figure "reboot to all 20 sites answering" "$(box_elapsed "$t") s"
failed_units=$(box_run systemctl list-units --failed --no-legend 'systemd-nspawn@*')
[ -z "$failed_units" ] || fail "container units failed after the reboot: $failed_units"
srvctl_front_owned || fail "after reboot, haproxy does not run srvctl's front"
box_run curl -fsS -o /dev/null --max-time 5 --resolve "$one:443:127.0.0.1" \
    --cacert /var/lib/srvctl/pki/ca.crt "https://$one/" || fail "after reboot, no HTTPS answer for $one"
box_run systemctl is-enabled machines.target >/dev/null 2>&1 || true
box_run systemctl is-active --quiet srvctl-firewall.service || fail "after reboot, srvctl's firewall is not loaded"
out=$(box_run sc update-install --dry-run) || fail "sc update-install --dry-run after the reboot: $out"
[ "$(tail -n 1 <<<"$out")" = "nothing to change" ] || fail "after the reboot, sc update-install would change: $out"

step "destroy $two"
# Running, it is refused without --force, in one line, and nothing changes.
sum=$(box_run sha256sum /var/lib/srvctl/datastore.json)
set +e
out=$(box_run sc destroy-ve "$two" 2>&1); code=$?
set -e
[ "$code" = 8 ] && [ "$(wc -l <<<"$out")" = 1 ] && grep -q -- "--force" <<<"$out" ||
    fail "destroy-ve of a running container without --force: exit $code: $out"
[ "$(box_run sha256sum /var/lib/srvctl/datastore.json)" = "$sum" ] ||
    fail "a refused destroy-ve changed the datastore"
box_run systemctl is-active --quiet "systemd-nspawn@$two.service" ||
    fail "a refused destroy-ve stopped $two"
box_run sc destroy-ve "$two" --force
leftovers=$(box_sh '
    n=$1
    for p in /var/lib/machines/$n /run/systemd/nspawn/$n.nspawn /run/srvctl/containers/$n \
             /run/systemd/generator/machines.target.wants/systemd-nspawn@$n.service \
             /run/systemd/generator/systemd-nspawn@$n.service.d; do
        [ -e "$p" ] && echo "$p"
    done
    find /var/log/journal -maxdepth 1 -xtype l 2>/dev/null
    machinectl list --no-legend | grep -F "$n"
    grep -F "$n" /etc/hosts
    sc get container "$n" exist | grep -vx false
    true' "$two")
[ -z "$leftovers" ] || fail "left behind after destroy-ve: $leftovers"
srvctl_wait_http "$one" "$ip_one" 10 || fail "$one stopped answering after $two was destroyed"

tenants_check

step "sc diagnose: healthy, five planted faults found with their hints, healthy again"
diagnose_check site3.example.com site4.example.com || fail "sc diagnose"

echo "host-in-a-box: measured" >&2
for f in "${figures[@]}"; do echo "  $f" >&2; done
echo "host-in-a-box: 1 passed, 0 failed"
