# shellcheck shell=bash
# srvctl.sh - srvctl on top of box.sh: build srvctl, build (and cache) the site image with
# `sc regenerate rootfs`, install srvctl's Debian package into a box, wait for a site.
#
#   . tests/e2e/lib/box.sh; . tests/e2e/lib/srvctl.sh
#   srvctl_build                     release binaries of the work tree
#   srvctl_site_image                build or reuse the site image -> $SRVCTL_IMAGE
#   srvctl_deb                       build (once) the Debian package of the release build
#                                    (scripts/package.sh deb) -> $SRVCTL_DEB
#   srvctl_install_in_box [JSON]     install that package into the current box with dpkg -i, and
#                                    write clusters.json JSON (default: h1.test alone)
#   srvctl_update_install_twice      sc update-install in the box, then again: the second run
#                                    (and its --dry-run) has nothing to change
#   srvctl_image_in_box              copy the site image into the box (as a btrfs subvolume
#                                    when /var/lib/machines is btrfs there)
#   srvctl_wait_http NAME IP SECS    wait until http://IP/ serves the page naming NAME
#
# SRVCTL_REPO must point at the work tree. SRVCTL_BOX_PACKAGES is what the boxes of every
# end-to-end test add to box.sh's packages (one cached rootfs serves them all).

SRVCTL_BOX_PACKAGES="btrfs-progs xfsprogs haproxy nftables openssh-server openssh-client socat etcd-server postfix opendkim openssl"

srvctl_build() {
    (cd "$SRVCTL_REPO" && cargo build --release --locked --bins)
}

srvctl_site_image() {
    local key root
    key=$(sha256sum < "$SRVCTL_REPO/src/containers/image.rs" | cut -c1-16)
    root=${BOX_CACHE_DIR:-/var/cache/srvctl-e2e}/site-image-$key
    SRVCTL_IMAGE=$root/var/lib/machines/.srvctl-images/debian
    SRVCTL_IMAGE_SECONDS=cached
    if [ ! -d "$SRVCTL_IMAGE" ]; then
        local t=${EPOCHREALTIME/./}
        rm -rf "$root.tmp"
        mkdir -p "$root.tmp"
        "$SRVCTL_REPO/target/release/sc" --root "$root.tmp" regenerate rootfs debian
        rm -rf "$root"
        mv -T "$root.tmp" "$root"
        SRVCTL_IMAGE_SECONDS="$(box_elapsed "$t") s"
    fi
    [ -f "$SRVCTL_IMAGE/etc/systemd/system/srvctl-site.service" ]
}

# The Debian package of the release build (scripts/package.sh deb), built once per run beside
# the boxes (not in /tmp, which may be a small tmpfs) -> $SRVCTL_DEB. Uncompressed: it only
# travels into the boxes.
srvctl_deb() {
    [ -n "${SRVCTL_DEB:-}" ] && [ -f "$SRVCTL_DEB" ] && return 0
    box__init_run_dir
    SRVCTL_DEB=$(SRVCTL_BIN_DIR="$SRVCTL_REPO/target/release" SRVCTL_PACKAGE_DIR="$BOX__RUN_DIR/packages" \
        DPKG_DEB_COMPRESSOR_TYPE=none bash "$SRVCTL_REPO/scripts/package.sh" deb | tail -n 1)
    [ -f "$SRVCTL_DEB" ]
}

srvctl_install_in_box() {
    srvctl_deb || return 1
    box_copy_in "$SRVCTL_DEB" /var/tmp/srvctl.deb || return 1
    # The box has no network: every Depends is in it already (SRVCTL_BOX_PACKAGES), and its
    # postinst does what a host needs (daemon-reload, the sysctls, srvctl.socket).
    box_run dpkg -i /var/tmp/srvctl.deb || return 1
    box_run rm -f /var/tmp/srvctl.deb
    local json=${1:-'{ "e2e": { "h1.test": { "host_ip": "192.0.2.1", "hostnet": 1, "dns1": "192.0.2.53" } } }'}
    box_sh 'cat > /etc/srvctl/clusters.json' <<<"$json"
    # Debian's etcd-server package enables its own etcd (on 127.0.0.1): srvctl runs its member
    # as srvctl-etcd.service, and the operator turns the package's one off.
    box_run systemctl disable --now --quiet etcd.service 2>/dev/null || true
}

# The box's rootfs has every package srvctl needs (SRVCTL_BOX_PACKAGES) and no mirror: a run
# that installed anything would fail. Its /proc/sys is read-only, so the limits are raised on
# the machine the box runs on beforehand (the same kernel): the limits step finds them at
# their floors. Prints what it measured (UPDATE_INSTALL_FIGURES) and fails with a message.
srvctl_update_install_twice() {
    local first second dry t
    t=${EPOCHREALTIME/./}
    first=$(box_run sc --json update-install --hostname h1.test) ||
        { echo "the first run failed: $first" >&2; return 1; }
    UPDATE_INSTALL_FIGURES="first run $(box_elapsed "$t") s"
    grep -q '"changes": true' <<<"$first" || { echo "the first run changed nothing: $first" >&2; return 1; }
    # Nothing the box has is installed again, its name is left, the limits were raised.
    local step
    for step in packages hostname limits; do
        grep -A3 "\"step\": \"$step\"" <<<"$first" | grep -q '"needed": false' ||
            { echo "the first run's $step step had something to do: $first" >&2; return 1; }
    done
    for step in firewall units; do
        grep -A3 "\"step\": \"$step\"" <<<"$first" | grep -q '"needed": true' ||
            { echo "the first run's $step step had nothing to do: $first" >&2; return 1; }
    done
    # The distribution's postfix and opendkim units are disabled (step replaced) when their
    # packages enabled them.
    local done=2
    grep -A3 '"step": "replaced"' <<<"$first" | grep -q '"needed": true' && done=3
    [ "$(grep -c '"outcome": "done"' <<<"$first")" = "$done" ] ||
        { echo "the first run's steps did not all succeed: $first" >&2; return 1; }
    local table
    table=$(box_run nft list table inet srvctl-firewall 2>&1) || true
    grep -q 'tcp dport 2222 accept' <<<"$table" ||
        { echo "srvctl's firewall table is not loaded: $table" >&2; return 1; }
    box_run systemctl is-enabled --quiet srvctl-gateway.service srvctl-firewall.service ||
        { echo "srvctl's units are not enabled" >&2; return 1; }
    dry=$(box_run sc update-install --dry-run) || { echo "--dry-run failed: $dry" >&2; return 1; }
    [ "$dry" = "$(grep -v '^would' <<<"$dry")" ] && [ "$(tail -n 1 <<<"$dry")" = "nothing to change" ] ||
        { echo "after a run, --dry-run lists steps: $dry" >&2; return 1; }
    t=${EPOCHREALTIME/./}
    second=$(box_run sc --json update-install) || { echo "the second run failed: $second" >&2; return 1; }
    UPDATE_INSTALL_FIGURES="$UPDATE_INSTALL_FIGURES, second run $(box_elapsed "$t") s"
    grep -q '"changes": false' <<<"$second" && ! grep -q '"needed": true' <<<"$second" ||
        { echo "the second run changed something: $second" >&2; return 1; }
    [ "$(box_run sc update-install | tail -n 1)" = "nothing to change" ] ||
        { echo "a third run does not say nothing to change" >&2; return 1; }
}

srvctl_image_in_box() {
    box_sh '
        set -e
        mkdir -p -m 0700 /var/lib/machines/.srvctl-images
        if [ "$(stat -f -c %T /var/lib/machines)" = btrfs ]; then
            btrfs -q subvolume create /var/lib/machines/.srvctl-images/debian
        fi'
    box_copy_in "$SRVCTL_IMAGE/." /var/lib/machines/.srvctl-images/debian
}

srvctl_wait_http() {
    local deadline=$((SECONDS + $3))
    until box_run curl -fsS --max-time 2 "http://$2/" 2>/dev/null | grep -q "<h1>$1</h1>"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.05
    done
}

# Whether haproxy runs srvctl's front through srvctl's drop-in, and the distribution's
# /etc/haproxy/haproxy.cfg is as its package installed it.
srvctl_front_owned() {
    box_sh '
        pid=$(systemctl show -p MainPID --value haproxy.service)
        [ "${pid:-0}" != 0 ] || { echo "haproxy does not run" >&2; exit 1; }
        tr "\0" " " < "/proc/$pid/cmdline" | grep -q " -f /run/srvctl/haproxy/haproxy.cfg " ||
            { echo "haproxy runs $(tr "\0" " " < "/proc/$pid/cmdline")" >&2; exit 1; }
        ! grep -q srvctl /etc/haproxy/haproxy.cfg ||
            { echo "/etc/haproxy/haproxy.cfg was changed" >&2; exit 1; }'
}

# srvctl_add_sites USER NAME...: `sc add-ve NAME --user USER` for each NAME in turn (each
# returns once its container has booted); fails at the first that fails.
srvctl_add_sites() {
    local user=$1 name
    shift
    for name in "$@"; do
        box_run sc add-ve "$name" --user "$user" >/dev/null || return 1
    done
}

# srvctl_wait_sites SECS NAME...: wait until every NAME answers HTTP at its address (asked
# inside the box, all in one loop); prints the names still silent when SECS ran out.
srvctl_wait_sites() {
    local secs=$1
    shift
    box_sh '
        deadline=$(( $(date +%s) + $1 )); shift
        pending=""
        for n in "$@"; do pending="$pending $n=$(sc get container "$n" ip)"; done
        while [ -n "$pending" ]; do
            left=""
            for p in $pending; do
                curl -fsS --max-time 2 "http://${p#*=}/" 2>/dev/null | grep -q "<h1>${p%%=*}</h1>" \
                    || left="$left $p"
            done
            pending=$left
            [ -z "$pending" ] && exit 0
            [ "$(date +%s)" -ge "$deadline" ] && { echo "$pending"; exit 1; }
            sleep 0.2
        done' "$secs" "$@"
}
