# shellcheck shell=bash
# shellcheck disable=SC2034,SC2119,SC2120 # public globals; optional function arguments
# box.sh - "host in a box" for srvctl end-to-end tests.
#
# Boots a real systemd host (Debian, booted with systemd-nspawn -b) on a machine whose
# PID 1 need not be systemd, runs commands in it with nsenter, and lets it start nested
# containers through systemd-nspawn@.service. See DESIGN.md, "Testing tiers", tier 3.
#
# Usage (from a bash script running as root, with `set -euo pipefail`):
#
#   . tests/e2e/lib/box.sh
#   box_deps                      # install systemd-container, debootstrap, ... if missing
#   box_rootfs                    # build or reuse the cached rootfs -> $BOX_ROOTFS
#   box_start h1.test             # copy the rootfs, boot it, wait for systemd -> BOX_NAME=h1.test
#   box_run systemctl is-system-running
#   box_copy_in ./target/debug/srvctl /usr/local/bin/srvctl
#   box_reboot
#   box_stop                      # also done automatically at exit (trap)
#
# Functions (public):
#   box_deps                      install what the harness needs on this machine (idempotent)
#   box_rootfs                    build/reuse the cached rootfs; sets BOX_ROOTFS, BOX_ROOTFS_KEY,
#                                 BOX_ROOTFS_CACHED (1 = reused, 0 = built), BOX_ROOTFS_SECONDS
#   box_start NAME [NSPAWN_ARG...]
#                                 boot a box named NAME (also its hostname); extra arguments go
#                                 to systemd-nspawn (e.g. --network-bridge=BR); makes NAME the
#                                 current box; sets BOX_NAME, BOX_PID, BOX_DIR, BOX_BOOT_SECONDS
#   box_use NAME                  make another started box the current one
#   box_pid                       print the PID (on this machine) of the current box's systemd
#   box_run CMD [ARG...]          run CMD as root inside the current box (stdin/stdout/stderr
#                                 pass through; exit status is CMD's; 125 if the box is down)
#   box_sh SCRIPT [ARG...]        box_run sh -c SCRIPT sh ARG...
#   box_copy_in SRC DST           copy a file/dir from this machine into the box (like cp -a:
#                                 into DST if DST is an existing directory, else as DST)
#   box_copy_out SRC DST          copy a file/dir from the box to this machine (same rules)
#   box_wait_running [TIMEOUT]    wait until is-system-running says running/degraded
#   box_reboot                    reboot the box, wait until it is running again
#                                 (sets BOX_REBOOT_SECONDS)
#   box_stop [NAME]               halt the box (SIGTERM to nspawn; SIGKILL after
#                                 BOX_STOP_TIMEOUT), remove its per-run copy
#   box_diag                      print failed units, jobs, the journal tail and console tail
#   box_bridge BR                 create a bridge BR on this machine (deleted at exit), for
#                                 box_start NAME --network-bridge=BR with several boxes
#   box_defer CMD [ARG...]        run CMD at exit, before the boxes are stopped (LIFO)
#   box_cleanup                   stop all boxes and remove everything (the exit trap calls it)
#   box_log MSG...                print "[box +S.s] MSG" on stderr
#   box_elapsed START_US          print seconds since START_US (a ${EPOCHREALTIME/./} value)
#
# Environment (read when the function runs; all optional):
#   BOX_SUITE            Debian suite (bookworm)
#   BOX_MIRROR           mirror URL (default: derived from this machine's apt sources,
#                        else http://deb.debian.org/debian)
#   BOX_PACKAGES         space-separated package list of the rootfs (default below)
#   BOX_EXTRA_PACKAGES   packages added to BOX_PACKAGES (changes the cache key)
#   BOX_CACHE_DIR        rootfs cache (/var/cache/srvctl-e2e)
#   BOX_TMP_DIR          where per-run copies live (/var/tmp)
#   BOX_BOOT_TIMEOUT     seconds to wait for systemd in the box (120)
#   BOX_STOP_TIMEOUT     seconds to wait for a clean halt before SIGKILL (30)
#   BOX_KEEP=1           keep the per-run directory at exit (boxes are still stopped)
#   BOX_QUIET=1          no progress messages
#
# The library installs EXIT/INT/TERM/HUP traps when sourced: do not replace them, register
# extra cleanup with box_defer. Only the shell that sourced the library cleans up (command
# substitutions and subshells do not).

[[ -n "${BOX__LOADED:-}" ]] && return 0
BOX__LOADED=1

BOX__RECIPE=3 # bump when the rootfs post-processing changes (part of the cache key)
BOX__DEFAULT_PACKAGES="systemd systemd-sysv dbus iproute2 systemd-container libnss-systemd
openvpn curl ca-certificates procps debootstrap iputils-ping"
BOX__DEPS_PACKAGES="systemd-container debootstrap iproute2 debian-archive-keyring util-linux procps tar"
BOX__INNER_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

BOX_NAME=${BOX_NAME:-}
BOX_PID=
BOX_DIR=
BOX_ROOTFS=${BOX_ROOTFS:-}
BOX_ROOTFS_KEY=
BOX_ROOTFS_CACHED=
BOX_ROOTFS_SECONDS=
BOX_BOOT_SECONDS=
BOX_REBOOT_SECONDS=

BOX__MAIN_PID=$BASHPID
BOX__T0=${EPOCHREALTIME/./}
BOX__RUN_DIR=          # per-run directory (one per sourcing shell), holds one dir per box
BOX__BUILD_TMP=        # rootfs build directory while debootstrap runs
BOX__BUILD_PGID=       # process group of the running debootstrap
BOX__DEFERRED=()
BOX__BRIDGES=()
BOX__CLEANED=

# ---------------------------------------------------------------------------------- utilities

box_log() {
    [[ "${BOX_QUIET:-}" == 1 ]] && return 0
    local now=${EPOCHREALTIME/./}
    printf '[box +%s] %s\n' "$(box__fmt_us $((now - BOX__T0)))" "$*" >&2
}

box__err() { printf '[box] ERROR: %s\n' "$*" >&2; }

box__die() {
    box__err "$@"
    return 1
}

# microseconds -> "12.3"
box__fmt_us() {
    local us=$1
    printf '%d.%d' $((us / 1000000)) $(((us % 1000000) / 100000))
}

box_elapsed() {
    local now=${EPOCHREALTIME/./}
    box__fmt_us $((now - $1))
}

box__need_root() {
    [[ $EUID -eq 0 ]] || box__die "the host-in-a-box harness must run as root"
}


box_defer() { BOX__DEFERRED+=("$(printf '%q ' "$@")"); }

# Unmount everything mounted below DIR (deepest first), then remove DIR without ever
# crossing into another file system.
box__rm_tree() {
    local dir=$1 mnt
    [[ -n "$dir" && -e "$dir" ]] || return 0
    dir=$(readlink -f "$dir")
    [[ "$dir" != / ]] || return 1
    while read -r mnt; do
        umount -l "$mnt" 2>/dev/null || true
    done < <(awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r)
    rm -rf --one-file-system -- "$dir"
}

# ------------------------------------------------------------------------------------ box_deps

box_deps() {
    box__need_root || return 1
    local p missing=() cmd
    if command -v dpkg-query >/dev/null; then
        for p in $BOX__DEPS_PACKAGES; do
            [[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" == installed ]] \
                || missing+=("$p")
        done
        if ((${#missing[@]})); then
            box_log "installing ${missing[*]}"
            local log
            log=$(mktemp "${TMPDIR:-/tmp}/box-apt.XXXXXX")
            if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                    -o Dpkg::Use-Pty=0 "${missing[@]}"; } >"$log" 2>&1; then
                box__err "apt-get install ${missing[*]} failed:"
                tail -n 20 "$log" >&2
                rm -f "$log"
                return 1
            fi
            rm -f "$log"
        fi
    fi
    for cmd in systemd-nspawn debootstrap nsenter ip flock setsid tar timeout; do
        command -v "$cmd" >/dev/null \
            || box__die "$cmd not found (on Fedora: dnf install systemd-container debootstrap iproute util-linux)" \
            || return 1
    done
}

# ---------------------------------------------------------------------------------- box_rootfs

# The first http(s)/ftp/file URI of a "deb" source for $BOX_SUITE in this machine's apt config.
box__mirror() {
    local suite=${BOX_SUITE:-bookworm} f uri=
    if [[ -n "${BOX_MIRROR:-}" ]]; then
        echo "$BOX_MIRROR"
        return 0
    fi
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -r "$f" ]] || continue
        uri=$(awk -v s="$suite" '
            $1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                if ($(i + 1) == s && $i ~ /^(https?|ftp|file):\/\//) { print $i; exit }
            }' "$f")
        [[ -n "$uri" ]] && break
    done
    if [[ -z "$uri" ]]; then
        for f in /etc/apt/sources.list.d/*.sources; do
            [[ -r "$f" ]] || continue
            uri=$(awk -v s="$suite" '
                function flush() {
                    if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " s " ") && enabled != "no")
                        { n = split(uris, u, " "); for (k = 1; k <= n; k++)
                            if (u[k] ~ /^(https?|ftp|file):\/\//) { print u[k]; found = 1; exit } }
                    types = suites = uris = enabled = ""
                }
                /^[ \t]*#/ { next }
                /^[ \t]*$/ { flush(); next }
                { key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ +/, "")
                  if (key == "types") types = $0; else if (key == "suites") suites = $0
                  else if (key == "uris") uris = $0; else if (key == "enabled") enabled = tolower($0) }
                END { if (!found) flush() }' "$f")
            [[ -n "$uri" ]] && break
        done
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

box__packages() {
    # shellcheck disable=SC2086
    printf '%s\n' ${BOX_PACKAGES:-$BOX__DEFAULT_PACKAGES} ${BOX_EXTRA_PACKAGES:-} | sort -u
}

box_rootfs() {
    box__need_root || return 1
    local suite=${BOX_SUITE:-bookworm} cache=${BOX_CACHE_DIR:-/var/cache/srvctl-e2e}
    local arch pkgs key final t0 mirror tmp rc lockfd proxy=
    arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
    pkgs=$(box__packages | paste -sd, -)
    key=$(printf 'recipe=%s\nsuite=%s\narch=%s\nvariant=minbase\npackages=%s\n' \
        "$BOX__RECIPE" "$suite" "$arch" "$pkgs" | sha256sum | cut -c1-16)
    final=$cache/$key
    BOX_ROOTFS_KEY=$key
    t0=${EPOCHREALTIME/./}
    if [[ -d "$final/rootfs" ]]; then
        BOX_ROOTFS=$final/rootfs BOX_ROOTFS_CACHED=1 BOX_ROOTFS_SECONDS=0
        box_log "rootfs cached: $final ($suite)"
        return 0
    fi
    mkdir -p "$cache"
    # One builder per key; a second caller waits and then reuses the result.
    exec {lockfd}>"$cache/.lock-$key"
    if ! flock -n "$lockfd"; then
        box_log "another process is building rootfs $key, waiting"
        flock "$lockfd"
    fi
    if [[ -d "$final/rootfs" ]]; then
        exec {lockfd}>&-
        BOX_ROOTFS=$final/rootfs BOX_ROOTFS_CACHED=1 BOX_ROOTFS_SECONDS=0
        box_log "rootfs cached: $final ($suite)"
        return 0
    fi
    # Leftovers of killed builds (we hold the lock, so nobody is using them).
    for tmp in "$cache"/.build-"$key".*; do
        [[ -e "$tmp" ]] && box__rm_tree "$tmp"
    done
    mirror=$(box__mirror)
    tmp=$(mktemp -d "$cache/.build-$key.XXXXXX")
    chmod 0755 "$tmp"
    BOX__BUILD_TMP=$tmp
    # Use apt's HTTP proxy for debootstrap's wget, if this machine has one configured.
    if [[ -z "${http_proxy:-}" ]] && command -v apt-config >/dev/null; then
        eval "$(apt-config shell proxy Acquire::http::Proxy)"
    fi
    box_log "building rootfs (about 1 minute): debootstrap --variant=minbase $suite from $mirror"
    box_log "  packages: $pkgs"
    box_log "  log: $tmp/debootstrap.log"
    # Own session/process group, in the background, so that the trap can stop it and all of
    # its children (wget, dpkg) at once.
    http_proxy=${http_proxy:-$proxy} setsid debootstrap --variant=minbase --arch="$arch" \
        --include="$pkgs" "$suite" "$tmp/rootfs" "$mirror" \
        </dev/null >"$tmp/debootstrap.log" 2>&1 &
    BOX__BUILD_PGID=$!
    rc=0
    wait "$BOX__BUILD_PGID" || rc=$?
    BOX__BUILD_PGID=
    if ((rc != 0)); then
        box__err "debootstrap failed (status $rc); last lines of its log:"
        tail -n 25 "$tmp/debootstrap.log" >&2 || true
        box__rm_tree "$tmp"
        BOX__BUILD_TMP=
        exec {lockfd}>&-
        return 1
    fi
    box__postprocess_rootfs "$tmp/rootfs"
    printf 'suite=%s\narch=%s\nmirror=%s\npackages=%s\nbuilt=%s\nseconds=%s\n' \
        "$suite" "$arch" "$mirror" "$pkgs" "$(date -u +%FT%TZ)" "$(box_elapsed "$t0")" >"$tmp/info"
    mv "$tmp/debootstrap.log" "$tmp/info.debootstrap.log"
    sync -f "$tmp/info" 2>/dev/null || true
    mv -T "$tmp" "$final" # atomic: the cache entry is complete or absent
    BOX__BUILD_TMP=
    exec {lockfd}>&-
    BOX_ROOTFS=$final/rootfs BOX_ROOTFS_CACHED=0 BOX_ROOTFS_SECONDS=$(box_elapsed "$t0")
    box_log "rootfs built in ${BOX_ROOTFS_SECONDS} s: $final ($(du -sh "$final/rootfs" | cut -f1))"
}

# Make the debootstrapped tree host-independent and container-friendly.
box__postprocess_rootfs() {
    local r=$1
    # Every copy gets its own machine id (box_start writes one); an empty file lets
    # systemd/nspawn generate one for copies that do not (e.g. nested containers).
    : >"$r/etc/machine-id"
    rm -f "$r/var/lib/dbus/machine-id"
    # debootstrap copies these from the building machine.
    rm -f "$r/etc/hostname" "$r/etc/resolv.conf"
    printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$r/etc/hosts"
    rm -f "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/apt/*.bin
    # Nothing logs in: commands run through nsenter. A getty on the read-only console
    # only produces noise.
    ln -sf /dev/null "$r/etc/systemd/system/console-getty.service"
}

# ---------------------------------------------------------------------------- running boxes

box__starttime() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $20 }'; }

# PID files hold "PID STARTTIME", so that a reused PID is never taken for our process.
# Print the PID if that process still runs.
box__live_pid() {
    local pid start
    read -r pid start <"$1" 2>/dev/null || return 1
    [[ -n "$pid" && -n "$start" && "$(box__starttime "$pid")" == "$start" ]] || return 1
    echo "$pid"
}

box__rm_box_cgroups() {
    local cg
    [[ -f "$1/cgroups" ]] || return 0
    while read -r cg; do
        [[ -n "$cg" ]] && box__rm_cgroup "$cg"
    done <"$1/cgroups"
}

# A run whose shell was SIGKILLed could not clean up: stop its boxes and remove its files.
box__reap_stale_runs() {
    local r owner start bd
    for r in "${BOX_TMP_DIR:-/var/tmp}"/srvctl-e2e.*; do
        [[ -d "$r" && "$r" != "$BOX__RUN_DIR" && -f "$r/owner" ]] || continue
        read -r owner start <"$r/owner" || continue
        [[ -d /proc/$owner && "$(box__starttime "$owner")" == "$start" ]] && continue
        box_log "cleaning up stale run $r (its shell $owner is gone)"
        for bd in "$r"/*/; do
            [[ -f "$bd/supervisor.pid" ]] || continue
            box__halt "${bd%/}" || continue 2 # leave it alone if it cannot be stopped
        done
        box__rm_tree "$r" || true
    done
}

box__init_run_dir() {
    [[ -n "$BOX__RUN_DIR" && -d "$BOX__RUN_DIR" ]] && return 0
    mkdir -p "${BOX_TMP_DIR:-/var/tmp}"
    box__reap_stale_runs
    BOX__RUN_DIR=$(mktemp -d "${BOX_TMP_DIR:-/var/tmp}/srvctl-e2e.XXXXXX")
    echo "$BOX__MAIN_PID $(box__starttime "$BOX__MAIN_PID")" >"$BOX__RUN_DIR/owner"
}

box__dir() {
    local name=${1:-$BOX_NAME}
    [[ -n "$name" ]] || box__die "no box selected (box_start NAME first)" || return 1
    [[ -n "$BOX__RUN_DIR" && -d "$BOX__RUN_DIR/$name" ]] \
        || box__die "box $name was not started by this shell" || return 1
    echo "$BOX__RUN_DIR/$name"
}

# PID of the box's init (pid 1 in its PID namespace), a child of the current nspawn process.
# Recomputed on every call: a reboot starts a new nspawn and a new init.
box__pid_of() {
    local d=$1 npid c
    npid=$(box__live_pid "$d/nspawn.pid") || return 1
    for c in $(cat /proc/"$npid"/task/*/children 2>/dev/null || pgrep -P "$npid"); do
        # still nspawn's own code (not yet exec'd into systemd)?
        [[ /proc/$c/exe -ef /proc/$npid/exe ]] && continue
        if awk '/^NSpid:/ { exit !(NF > 2 && $NF == 1) }' "/proc/$c/status" 2>/dev/null; then
            echo "$c"
            return 0
        fi
    done
    return 1
}

box_pid() {
    local d
    d=$(box__dir) || return 1
    BOX_PID=$(box__pid_of "$d") || box__die "box $BOX_NAME is not running" || return 1
    echo "$BOX_PID"
}

box_use() {
    box__dir "$1" >/dev/null || return 1
    BOX_NAME=$1
    BOX_DIR=$BOX__RUN_DIR/$1
    BOX_PID=$(box__pid_of "$BOX_DIR") || BOX_PID=
}

box_run() {
    local d pid
    d=$(box__dir) || return 125
    pid=$(box__pid_of "$d") || { box__err "box $BOX_NAME is not running"; return 125; }
    BOX_PID=$pid
    nsenter -t "$pid" -a -- env -i PATH="$BOX__INNER_PATH" HOME=/root LANG=C.UTF-8 \
        TERM="${TERM:-dumb}" SYSTEMD_PAGER=cat SYSTEMD_COLORS=0 "$@"
}

box_sh() {
    local script=$1
    shift
    box_run sh -c "$script" sh "$@"
}

# box_run with a time limit (for polling a box that may be busy or half up).
box__run_limited() {
    local secs=$1 d pid
    shift
    d=$(box__dir) || return 125
    pid=$(box__pid_of "$d") || return 125
    timeout -k 2 "$secs" nsenter -t "$pid" -a -- env -i PATH="$BOX__INNER_PATH" HOME=/root \
        LANG=C.UTF-8 SYSTEMD_PAGER=cat SYSTEMD_COLORS=0 "$@"
}

box_diag() {
    local d
    d=$(box__dir) || return 0
    {
        echo "---- box $BOX_NAME: systemctl is-system-running"
        box__run_limited 10 systemctl is-system-running 2>&1
        echo "---- failed units"
        box__run_limited 10 systemctl --failed --no-legend --plain 2>&1
        echo "---- jobs"
        box__run_limited 10 systemctl list-jobs --no-legend 2>&1
        echo "---- journal (last 40 lines)"
        box__run_limited 10 journalctl -b --no-pager -n 40 2>&1
        echo "---- console (last 30 lines of $d/console.log)"
        tail -n 30 "$d/console.log" 2>&1
        echo "---- nspawn exit statuses: $(tr '\n' ' ' <"$d/exits" 2>/dev/null)"
    } >&2 || true
}

box_wait_running() {
    local timeout=${1:-${BOX_BOOT_TIMEOUT:-120}} d state='' deadline
    d=$(box__dir) || return 1
    deadline=$((SECONDS + timeout))
    while :; do
        if ! box__live_pid "$d/supervisor.pid" >/dev/null; then
            box__err "box $BOX_NAME: systemd-nspawn exited (status $(cat "$d/exit" 2>/dev/null || echo '?'))"
            tail -n 30 "$d/console.log" >&2 || true
            return 1
        fi
        state=$(box__run_limited 10 systemctl is-system-running 2>/dev/null) || true
        case $state in
        running | degraded) break ;;
        esac
        if ((SECONDS >= deadline)); then
            box__err "box $BOX_NAME: systemd not up after ${timeout} s (state: ${state:-unreachable})"
            box_diag
            return 1
        fi
        sleep 0.2
    done
    BOX_PID=$(box__pid_of "$d") || true
    if [[ "$state" == degraded ]]; then
        box_log "box $BOX_NAME is degraded; failed units:"
        box__run_limited 10 systemctl --failed --no-legend --plain >&2 || true
    fi
}

# The cgroup directories (cgroup2 and the v1 name=systemd hierarchy) this shell is in.
box__cgroup_dirs() {
    local ctrl path mnt
    while IFS=: read -r _ ctrl path; do
        case $ctrl in
        "") mnt=$(findmnt -rn -t cgroup2 -o TARGET | head -n 1) ;;
        name=systemd)
            mnt=$(findmnt -rn -t cgroup -o TARGET,OPTIONS \
                | awk '$2 ~ /(^|,)name=systemd(,|$)/ { print $1; exit }') ;;
        *) continue ;;
        esac
        [[ -n "$mnt" && -d "$mnt$path" ]] && echo "${mnt%/}${path%/}"
    done </proc/self/cgroup
}

# Remove a cgroup directory tree (children first); only empty cgroups can be removed, and
# the kernel may need a moment after the last process died.
box__rm_cgroup() {
    local dir=$1 i
    for ((i = 0; i < 20; i++)); do
        [[ -d "$dir" ]] || return 0
        find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null || true
        [[ -d "$dir" ]] || return 0
        sleep 0.1
    done
    box__err "cannot remove cgroup $dir (still in use)"
}

box__validate_name() {
    [[ "$1" =~ ^[a-z0-9]([a-z0-9-]{0,62})(\.[a-z0-9]([a-z0-9-]{0,62}))*$ && ${#1} -le 64 ]] \
        || box__die "invalid box name '$1' (use a host name such as h1.test)"
}

box_start() {
    box__need_root || return 1
    local name=${1:-} d root t0 extra=() id
    [[ -n "$name" ]] || box__die "usage: box_start NAME [NSPAWN_ARG...]" || return 1
    shift
    extra=("$@")
    box__validate_name "$name" || return 1
    [[ -n "$BOX_ROOTFS" && -d "$BOX_ROOTFS" ]] || box_rootfs || return 1
    box__init_run_dir
    d=$BOX__RUN_DIR/$name
    [[ ! -e "$d" ]] || box__die "box $name already exists in this run" || return 1
    mkdir -p "$d"
    root=$d/rootfs
    t0=${EPOCHREALTIME/./}
    cp -a --reflink=auto "$BOX_ROOTFS" "$root"
    box_log "box $name: rootfs copied in $(box_elapsed "$t0") s"

    echo "$name" >"$root/etc/hostname"
    printf '127.0.1.1\t%s %s\n' "$name" "${name%%.*}" >>"$root/etc/hosts"
    id=$(tr -d '-' </proc/sys/kernel/random/uuid)
    echo "$id" >"$root/etc/machine-id"
    # systemd-networkd manages the box's own links and the bridges/veths of nested
    # containers. systemctl --root works offline, without a running systemd.
    chroot "$root" systemctl --root=/ --quiet enable systemd-networkd.service \
        || box__die "cannot enable systemd-networkd in the box" || return 1
    # The box has a private network with no uplink: nothing would ever be "online", so units
    # wanting network-online.target (haproxy, openvpn) would wait for the 2-minute timeout.
    ln -sfn /dev/null "$root/etc/systemd/system/systemd-networkd-wait-online.service"

    local args=(--quiet --register=no --keep-unit --boot --directory="$root" --machine="$name"
        --private-network --settings=no --link-journal=no --console=read-only)
    # openvpn inside the box (and in its containers) needs the tun device.
    [[ -c /dev/net/tun ]] && args+=(--bind=/dev/net/tun)
    printf '%s\n' "${args[@]}" "${extra[@]}" >"$d/nspawn.args"

    box_log "box $name: booting (systemd-nspawn ${args[*]} ${extra[*]})"
    t0=${EPOCHREALTIME/./}
    # Supervisor: restart nspawn while it exits with 133 (a reboot inside the box).
    # With --keep-unit, nspawn uses the cgroup it runs in as the box's cgroup tree (it
    # creates payload/ and supervisor/ in it). Outside systemd, give each box a cgroup of its
    # own, or two boxes would share one tree; under systemd, run it in a delegated scope.
    local wrap=() cg cgs=()
    if [[ -d /run/systemd/system ]]; then
        wrap=(systemd-run --scope --quiet --collect -p Delegate=yes
            --unit="srvctl-e2e-${BOX__RUN_DIR##*.}-${name//./-}" --)
    else
        for cg in $(box__cgroup_dirs); do
            cgs+=("$cg/srvctl-e2e-${BOX__RUN_DIR##*.}-$name")
        done
    fi
    printf '%s\n' "${cgs[@]}" >"$d/cgroups"
    (
        # Only box_stop ends the box: ignore the terminal's and `timeout`'s group signals.
        trap - EXIT
        trap '' INT TERM HUP
        set +e
        for cg in "${cgs[@]}"; do
            mkdir -p "$cg" && echo "$BASHPID" >"$cg/cgroup.procs" \
                || echo "[box] WARNING: cannot move box $name into cgroup $cg" >&2
        done
        rc=0
        while [[ ! -e "$d/stop" ]]; do
            # Own session: a Ctrl-C must not reach nspawn while the trap stops it.
            setsid "${wrap[@]}" systemd-nspawn "${args[@]}" "${extra[@]}" \
                </dev/null >>"$d/console.log" 2>&1 &
            echo "$! $(box__starttime $!)" >"$d/nspawn.pid.new"
            mv -f "$d/nspawn.pid.new" "$d/nspawn.pid"
            wait $!
            rc=$?
            echo "$rc" >>"$d/exits"
            [[ $rc -eq 133 ]] || break
            echo "---- [box] reboot (nspawn exited 133), starting again" >>"$d/console.log"
        done
        echo "$rc" >"$d/exit"
    ) &
    echo "$! $(box__starttime $!)" >"$d/supervisor.pid"
    BOX_NAME=$name
    BOX_DIR=$d
    if ! box_wait_running; then
        box_stop "$name" || true
        return 1
    fi
    BOX_BOOT_SECONDS=$(box_elapsed "$t0")
    box_log "box $name: systemd up in ${BOX_BOOT_SECONDS} s (init pid $BOX_PID)"
}

box_reboot() {
    local d old npid t0 deadline
    d=$(box__dir) || return 1
    old=$(cat "$d/nspawn.pid")
    t0=${EPOCHREALTIME/./}
    box_log "box $BOX_NAME: rebooting"
    box_run systemctl reboot || true
    deadline=$((SECONDS + ${BOX_BOOT_TIMEOUT:-120}))
    while :; do
        npid=$(cat "$d/nspawn.pid" 2>/dev/null) || true
        [[ -n "$npid" && "$npid" != "$old" ]] && break
        if ! box__live_pid "$d/supervisor.pid" >/dev/null; then
            box__err "box $BOX_NAME: nspawn exited with status $(cat "$d/exit" 2>/dev/null) instead of 133 on reboot"
            tail -n 30 "$d/console.log" >&2 || true
            return 1
        fi
        if ((SECONDS >= deadline)); then
            box__err "box $BOX_NAME: did not go down for reboot"
            box_diag
            return 1
        fi
        sleep 0.1
    done
    box_wait_running || return 1
    BOX_REBOOT_SECONDS=$(box_elapsed "$t0")
    box_log "box $BOX_NAME: up again after reboot in ${BOX_REBOOT_SECONDS} s (init pid $BOX_PID)"
}

# Halt the box whose directory is DIR: SIGTERM to nspawn (a clean halt of the booted
# system), SIGKILL after BOX_STOP_TIMEOUT. Returns 1 if some process of it survives.
box__halt() {
    local d=$1 name sup npid cur init deadline
    name=$(basename "$d")
    touch "$d/stop" # the supervisor must not start nspawn again
    sup=$(box__live_pid "$d/supervisor.pid") || sup=
    npid=$(box__live_pid "$d/nspawn.pid") || npid=
    [[ -n "$sup" || -n "$npid" ]] || return 0
    [[ -n "$npid" ]] && kill -TERM "$npid" 2>/dev/null
    deadline=$((SECONDS + ${BOX_STOP_TIMEOUT:-30}))
    while box__live_pid "$d/supervisor.pid" >/dev/null || box__live_pid "$d/nspawn.pid" >/dev/null; do
        if ((SECONDS >= deadline)); then
            box__err "box $name: no clean halt after ${BOX_STOP_TIMEOUT:-30} s, killing it"
            init=$(box__pid_of "$d") || init=
            [[ -n "$init" ]] && kill -KILL "$init" 2>/dev/null
            npid=$(box__live_pid "$d/nspawn.pid") && kill -KILL "$npid" 2>/dev/null
            sup=$(box__live_pid "$d/supervisor.pid") && kill -KILL "$sup" 2>/dev/null
            deadline=$((SECONDS + 10))
            while box__live_pid "$d/supervisor.pid" >/dev/null || box__live_pid "$d/nspawn.pid" >/dev/null; do
                ((SECONDS < deadline)) || break
                sleep 0.1
            done
            break
        fi
        sleep 0.1
        # A reboot may have started a new nspawn between our read and the kill.
        cur=$(box__live_pid "$d/nspawn.pid") || cur=
        if [[ -n "$cur" && "$cur" != "$npid" ]]; then
            npid=$cur
            kill -TERM "$npid" 2>/dev/null || true
        fi
    done
    [[ -n "$sup" ]] && { wait "$sup" 2>/dev/null || true; }
    if box__live_pid "$d/supervisor.pid" >/dev/null || box__live_pid "$d/nspawn.pid" >/dev/null; then
        box__err "box $name: cannot stop it (see $d)"
        return 1
    fi
    box__rm_box_cgroups "$d"
}

box_stop() {
    local name=${1:-$BOX_NAME} d t0
    [[ -n "$name" && -n "$BOX__RUN_DIR" && -d "$BOX__RUN_DIR/$name" ]] || return 0
    d=$BOX__RUN_DIR/$name
    t0=${EPOCHREALTIME/./}
    if [[ -f "$d/supervisor.pid" && ! -f "$d/stopped" ]]; then
        box_log "box $name: stopping"
        # Never remove the files of a box that may still run.
        box__halt "$d" || return 1
        touch "$d/stopped"
        box_log "box $name: stopped in $(box_elapsed "$t0") s (nspawn exit statuses: $(tr '\n' ' ' <"$d/exits" 2>/dev/null))"
    fi
    if [[ "${BOX_KEEP:-}" == 1 ]]; then
        box_log "box $name: kept in $d (BOX_KEEP=1)"
    else
        box__rm_tree "$d"
    fi
    [[ "$BOX_NAME" == "$name" ]] && BOX_PID=
    return 0
}

box_bridge() {
    local br=$1
    ip link show dev "$br" >/dev/null 2>&1 && return 0
    ip link add name "$br" type bridge
    ip link set dev "$br" up
    BOX__BRIDGES+=("$br")
}

box_copy_in() {
    local src=$1 dst=$2 tdir name stage
    [[ -e "$src" || -L "$src" ]] || box__die "box_copy_in: $src does not exist" || return 1
    if box_run test -d "$dst"; then
        tdir=$dst name=$(basename "$src")
    else
        tdir=$(dirname "$dst") name=$(basename "$dst")
    fi
    box_run mkdir -p "$tdir" || return 1
    if [[ -d "$src" && ! -L "$src" ]]; then
        box_run mkdir -p "$tdir/$name" || return 1
        tar -C "$src" --numeric-owner --xattrs --xattrs-include='*' -cf - . \
            | box_run tar -C "$tdir/$name" --numeric-owner --xattrs --xattrs-include='*' -xpf -
    else
        box__init_run_dir
        stage=$(mktemp -d "$BOX__RUN_DIR/copy.XXXXXX")
        cp -al "$src" "$stage/$name" 2>/dev/null || cp -a "$src" "$stage/$name"
        local rc=0
        tar -C "$stage" --numeric-owner --xattrs --xattrs-include='*' -cf - "$name" \
            | box_run tar -C "$tdir" --numeric-owner --xattrs --xattrs-include='*' -xpf - || rc=$?
        rm -rf "$stage"
        return $rc
    fi
}

box_copy_out() {
    local src=$1 dst=$2 tdir name
    box_run test -e "$src" || box__die "box_copy_out: $src does not exist in box $BOX_NAME" || return 1
    if [[ -d "$dst" ]]; then
        tdir=$dst name=$(basename "$src")
    else
        tdir=$(dirname "$dst") name=$(basename "$dst")
    fi
    mkdir -p "$tdir"
    if box_run test -d "$src" -a ! -L "$src"; then
        mkdir -p "$tdir/$name"
        box_run tar -C "$src" --numeric-owner -cf - . | tar -C "$tdir/$name" --numeric-owner -xpf -
    else
        # shellcheck disable=SC2016 # expanded inside the box
        box_sh 't=$(mktemp -d) && cp -a "$1" "$t/$2" && tar -C "$t" --numeric-owner -cf - "$2"
                rc=$?; rm -rf "$t"; exit $rc' "$src" "$name" \
            | tar -C "$tdir" --numeric-owner -xpf -
    fi
}

# ------------------------------------------------------------------------------------ cleanup

box_cleanup() {
    [[ "$BASHPID" == "$BOX__MAIN_PID" ]] || return 0
    [[ -z "$BOX__CLEANED" ]] || return 0
    BOX__CLEANED=1
    local i d br
    for ((i = ${#BOX__DEFERRED[@]} - 1; i >= 0; i--)); do
        eval "${BOX__DEFERRED[i]}" || true
    done
    if [[ -n "$BOX__BUILD_PGID" ]]; then
        kill -TERM -- "-$BOX__BUILD_PGID" 2>/dev/null || true
        sleep 0.5
        kill -KILL -- "-$BOX__BUILD_PGID" 2>/dev/null || true
        wait "$BOX__BUILD_PGID" 2>/dev/null || true
    fi
    if [[ -n "$BOX__BUILD_TMP" ]]; then
        box_log "removing unfinished rootfs build $BOX__BUILD_TMP"
        box__rm_tree "$BOX__BUILD_TMP" || true
    fi
    if [[ -n "$BOX__RUN_DIR" && -d "$BOX__RUN_DIR" ]]; then
        local stuck=0
        for d in "$BOX__RUN_DIR"/*/; do
            [[ -d "$d" ]] || continue
            box_stop "$(basename "$d")" || stuck=1
        done
        if ((stuck)); then
            box__err "some box could not be stopped; leaving $BOX__RUN_DIR (the next run cleans it up)"
        elif [[ "${BOX_KEEP:-}" != 1 ]]; then
            box__rm_tree "$BOX__RUN_DIR" || true
        fi
    fi
    for br in "${BOX__BRIDGES[@]}"; do
        ip link del dev "$br" 2>/dev/null || true
    done
}

box__on_exit() {
    local rc=$?
    [[ "$BASHPID" == "$BOX__MAIN_PID" ]] || return 0
    set +e
    trap - EXIT INT TERM HUP
    box_cleanup
    exit "$rc"
}

box__on_signal() {
    local sig=$1 num=$2
    [[ "$BASHPID" == "$BOX__MAIN_PID" ]] || exit $((128 + num))
    set +e
    trap - EXIT INT TERM HUP
    box__err "caught SIG$sig, cleaning up"
    box_cleanup
    exit $((128 + num))
}

trap 'box__on_exit' EXIT
trap 'box__on_signal INT 2' INT
trap 'box__on_signal TERM 15' TERM
trap 'box__on_signal HUP 1' HUP
