# shellcheck shell=bash
# cluster.sh - the cluster's steps and checks of cluster-in-boxes.sh: three boxes h1..h3.test
# on one bridge (192.0.2.11..13, hostnet 1..3, h1 the CA host), srvctl installed in each.
#
#   cluster_boot      boot the three hosts, give each its address, install srvctl
#   cluster_join      h1 makes the cluster CA; h2 joins over ssh (sc cluster join), h3 by hand
#                     (request, sign on h1, accept); each then starts its etcd member, sync
#                     service and mesh
#   cluster_start     wait until every sync service reaches the cluster; sets CLUSTER_FORM_SECONDS
#   cluster_check     the datastore's checks (uses fail, step and figure of the caller)
#   cluster_check_sites  real containers: across the mesh, one front, a reboot without etcd

CLUSTER_HOSTS="h1.test h2.test h3.test"
CLUSTER_BRIDGE=scbr-e2e
CLUSTER_JSON='{ "e2e": {
  "h1.test": { "host_ip": "192.0.2.11", "hostnet": 1, "prefix": 24, "role": "ca" },
  "h2.test": { "host_ip": "192.0.2.12", "hostnet": 2, "prefix": 24 },
  "h3.test": { "host_ip": "192.0.2.13", "hostnet": 3, "prefix": 24 } } }'

# Run a command in host $1.
cluster__on() {
    box_use "$1" || return 1
    shift
    box_run "$@"
}

cluster__ip() { echo "192.0.2.1${1:1:1}"; }

# Seconds (with a fraction) since a ${EPOCHREALTIME/./} value.
cluster__since() { box_elapsed "$1"; }

cluster_boot() {
    local h
    box_bridge "$CLUSTER_BRIDGE"
    for h in $CLUSTER_HOSTS; do
        box_start "$h" --network-bridge="$CLUSTER_BRIDGE" || return 1
        box_sh 'mkdir -p /etc/systemd/network && cat > /etc/systemd/network/10-host0.network' <<EOF
[Match]
Name=host0

[Network]
Address=$(cluster__ip "$h")/24
EOF
        box_run networkctl reload
        srvctl_install_in_box "$CLUSTER_JSON" || return 1
    done
    # Every host reaches every other one.
    local deadline=$((SECONDS + 30))
    for h in $CLUSTER_HOSTS; do
        until cluster__on h1.test ping -c1 -W1 "$(cluster__ip "$h")" >/dev/null 2>&1; do
            ((SECONDS < deadline)) || return 1
        done
    done
}

cluster_join() {
    local key csr bundle
    cluster__on h1.test sc cluster request >/dev/null || return 1
    cluster__on h1.test systemctl start ssh.service || return 1
    # h2 joins in one step over ssh; h3 the three steps by hand, so both ways stay tested.
    # The operator's trust in h2: root's key of h2 authorised on the CA host, whose host key
    # h2 learns first (as an operator would check it).
    key=$(cluster__on h2.test sh -c 'mkdir -p -m 0700 /root/.ssh && { test -f /root/.ssh/id_ed25519 ||
        ssh-keygen -q -t ed25519 -N "" -f /root/.ssh/id_ed25519; } && cat /root/.ssh/id_ed25519.pub') ||
        return 1
    cluster__on h1.test sh -c 'mkdir -p -m 0700 /root/.ssh && cat >> /root/.ssh/authorized_keys' \
        <<<"$key" || return 1
    # h1.test resolves through srvctl's block in /etc/hosts, which regenerate writes.
    cluster__on h2.test sc regenerate >/dev/null || return 1
    cluster__on h2.test sh -c 'ssh-keyscan -t ed25519 h1.test >> /root/.ssh/known_hosts' \
        2>/dev/null || return 1
    cluster__on h2.test sc cluster join || return 1

    csr=$(cluster__on h3.test sc cluster request) || return 1
    bundle=$(cluster__on h1.test sc cluster sign - <<<"$csr") || return 1
    cluster__on h3.test sc cluster accept - <<<"$bundle" || return 1
}

cluster_start() {
    local h t deadline
    # `sc cluster request` on h1 and `sc cluster accept` on the others started each host's
    # etcd member, sync service and mesh tunnels; the cluster forms once a majority is up.
    t=${EPOCHREALTIME/./}
    deadline=$((SECONDS + 90))
    for h in $CLUSTER_HOSTS; do
        until cluster__on "$h" grep -qs '"connected": true' /run/srvctl/sync.json; do
            ((SECONDS < deadline)) || return 1
            sleep 0.2
        done
    done
    CLUSTER_FORM_SECONDS=$(cluster__since "$t")
}

# The status of every container as host $1 sees it, without the live columns.
cluster__records() {
    cluster__on "$1" sc status --json | grep -v '"state"\|"since"'
}

# Wait until host $1 shows what h1 shows; prints the seconds it took.
cluster__converged() {
    local want=$2 limit=$3 t got
    t=${EPOCHREALTIME/./}
    while :; do
        got=$(cluster__records "$1") || true
        [ "$got" = "$want" ] && break
        [ "$(cluster__since "$t" | cut -d. -f1)" -lt "$limit" ] || return 1
        sleep 0.05
    done
    cluster__since "$t"
}

# A write on host $1 (a user of its own name $2), and its exit status.
cluster__write() { cluster__on "$1" sc add-user "$2"; }

cluster_check() {
    local h i pids=() want took n root

    step "cluster: the CA keys stay on h1; every host holds the same site root"
    cluster__on h1.test test -f /var/lib/srvctl/pki/cluster/ca.key || fail "h1 has no cluster CA key"
    cluster__on h1.test test -f /var/lib/srvctl/pki/cluster/site-ca.key || fail "h1 has no site root key"
    root=$(cluster__on h1.test cat /var/lib/srvctl/pki/cluster/site-ca.crt) || fail "h1 has no site root"
    for h in h2.test h3.test; do
        cluster__on "$h" test ! -e /var/lib/srvctl/pki/cluster/ca.key || fail "$h holds the cluster CA key"
        cluster__on "$h" test ! -e /var/lib/srvctl/pki/cluster/site-ca.key || fail "$h holds the site root key"
        [ "$(cluster__on "$h" cat /var/lib/srvctl/pki/cluster/site-ca.crt)" = "$root" ] ||
            fail "$h does not hold h1's site root"
        n=$(cluster__on "$h" grep -rl 'PRIVATE KEY' /var/lib/srvctl/pki/cluster | wc -l)
        [ "$n" = 1 ] || fail "$h holds $n private keys under pki/cluster, expected its own host key only"
    done

    step "cluster: 50 sc add-ve at once on h1 and h2"
    cluster__on h1.test sc add-reseller alice >/dev/null || fail "add-reseller on h1"
    t=${EPOCHREALTIME/./}
    for i in $(seq 1 50); do
        h=h$((1 + i % 2)).test
        (cluster__on "$h" sc add-ve "site$i.example.com" --no-start >/dev/null 2>"/tmp/cluster-add-$i.err"
            echo $? >"/tmp/cluster-add-$i.rc") &
        pids+=($!)
    done
    wait "${pids[@]}"
    figure "50 concurrent add-ve on two hosts" "$(cluster__since "$t") s"
    for i in $(seq 1 50); do
        [ "$(cat "/tmp/cluster-add-$i.rc")" = 0 ] || fail "add-ve site$i failed: $(cat "/tmp/cluster-add-$i.err")"
        rm -f "/tmp/cluster-add-$i.rc" "/tmp/cluster-add-$i.err"
    done
    n=$(cluster__on h1.test sc status --json | grep -c '"ip"')
    [ "$n" = 50 ] || fail "h1 shows $n containers, expected 50"
    n=$(cluster__on h1.test sc status --json | grep '"ip"' | sort -u | wc -l)
    [ "$n" = 50 ] || fail "only $n distinct addresses among 50 containers"
    want=$(cluster__records h1.test)
    for h in h2.test h3.test; do
        took=$(cluster__converged "$h" "$want" 2) || fail "$h does not show h1's 50 containers within 2 s"
        figure "sc status identical on $h" "$took s after the last write"
    done

    step "cluster: a user added on h1 has the same UID on h2 and h3"
    cluster__on h1.test sc add-user bob --reseller alice >/dev/null || fail "add-user on h1"
    want=$(cluster__on h1.test getent passwd bob) || fail "bob does not resolve on h1"
    for h in h2.test h3.test; do
        t=${EPOCHREALTIME/./}
        until [ "$(cluster__on "$h" getent passwd bob)" = "$want" ]; do
            [ "$(cluster__since "$t" | cut -d. -f1)" -lt 5 ] || fail "bob on $h is not '$want'"
            sleep 0.05
        done
        figure "add-user on h1 to getent on $h" "$(cluster__since "$t") s"
    done

    step "cluster: one member down, writes go on"
    cluster__on h3.test systemctl stop srvctl-etcd.service
    cluster__write h1.test carol >/dev/null || fail "a write on h1 failed with h3's member down"

    step "cluster: no quorum, writes are refused, sites keep serving"
    cluster__on h2.test systemctl stop srvctl-etcd.service
    sum=$(cluster__on h1.test sha256sum /var/lib/srvctl/datastore.json)
    set +e
    out=$(cluster__on h1.test sc add-user dave 2>&1)
    code=$?
    set -e
    [ "$code" != 0 ] || fail "a write without quorum succeeded"
    [ "$(wc -l <<<"$out")" = 1 ] || fail "the refusal is not one line: $out"
    grep -qi quorum <<<"$out" || fail "the refusal does not name the cause: $out"
    [ "$(cluster__on h1.test sha256sum /var/lib/srvctl/datastore.json)" = "$sum" ] ||
        fail "the refused write changed h1's cache"
    cluster__on h1.test sc status --json >/dev/null || fail "sc status does not answer from the cache"

    step "cluster: the members come back, everything converges"
    cluster__on h2.test systemctl start srvctl-etcd.service
    cluster__on h3.test systemctl start srvctl-etcd.service
    t=${EPOCHREALTIME/./}
    until cluster__write h2.test erin >/dev/null 2>&1; do
        [ "$(cluster__since "$t" | cut -d. -f1)" -lt 30 ] || fail "no write succeeds after the members came back"
        sleep 0.2
    done
    figure "members back to the first write" "$(cluster__since "$t") s"
    t=${EPOCHREALTIME/./}
    until cluster__on h1.test getent passwd erin >/dev/null; do
        [ "$(cluster__since "$t" | cut -d. -f1)" -lt 2 ] || fail "a write on h2 is not visible on h1 within 2 s"
        sleep 0.05
    done
    figure "write on h2 to getent on h1" "$(cluster__since "$t") s"
    want=$(cluster__records h2.test)
    took=$(cluster__converged h3.test "$want" 30) || fail "h3 does not converge"
    figure "h3 converged after its member came back" "$took s"
    cluster__on h1.test sc cluster status || fail "sc cluster status"
}

# Wait until site $1 answers HTTP at its address $2, at most $3 seconds, asked from host $4.
# The page of https://NAME/ through HOST's haproxy, verified against the cluster's site root
# alone; waits up to 30 s for the site's container to answer (haproxy's 503 page until then).
cluster__https() {
    local t=${EPOCHREALTIME/./}
    until cluster__on "$1" curl -fsS --max-time 5 --resolve "$2:443:127.0.0.1" \
        --cacert /var/lib/srvctl/pki/cluster/site-ca.crt "https://$2/" 2>/dev/null; do
        [ "$(cluster__since "$t" | cut -d. -f1)" -lt 30 ] || return 1
        sleep 0.5
    done
}

cluster__wait_http() {
    box_use "$4" && srvctl_wait_http "$1" "$2" "$3"
}

# The checks with real containers: a site on h2 served through h1's haproxy, a container on
# h1 reaching one on h2 with its own address, and h2 rebooting while etcd is out of its reach.
cluster_check_sites() {
    local one=web1.example.com two=web2.example.com ip1 ip2 page n t

    step "cluster: site containers on h1 and on h2 (placed from h1)"
    for h in h1.test h2.test; do
        box_use "$h"
        srvctl_image_in_box
    done
    t=${EPOCHREALTIME/./}
    ip1=$(cluster__on h1.test sc add-ve "$one") || fail "add-ve $one on h1"
    ip1=${ip1##* }
    ip2=$(cluster__on h1.test sc add-ve "$two" --host h2.test) || fail "add-ve $two --host h2.test"
    ip2=${ip2##* }
    cluster__wait_http "$one" "$ip1" 60 h1.test || fail "$one does not answer at $ip1 on h1"
    cluster__wait_http "$two" "$ip2" 90 h2.test || fail "$two (placed from h1) does not answer at $ip2 on h2"
    figure "add-ve --host h2 on h1 to the site answering on h2" "$(cluster__since "$t") s"

    step "cluster: the mesh carries container traffic with the containers' own addresses"
    for h in h1.test h2.test; do
        t=${EPOCHREALTIME/./}
        until [ "$(cluster__on "$h" systemctl list-units --all --no-legend --plain 'srvctl-mesh@*' |
            awk '{print $3}' | sort -u)" = active ]; do
            [ "$(cluster__since "$t" | cut -d. -f1)" -lt 30 ] || fail "the mesh tunnels of $h are not all up"
            sleep 0.2
        done
    done
    # A counter on h2 of what h1's container sends to h2's: it counts only the sender's own
    # address (masqueraded, the packets would come from h1's mesh address).
    cluster__on h2.test nft -f - <<EOF2 || fail "cannot add the counter on h2"
table inet e2e {
    chain forward {
        type filter hook forward priority -10; policy accept;
        ip saddr $ip1 ip daddr $ip2 tcp dport 80 counter
    }
}
EOF2
    cluster__on h1.test sc "$one" exec bash -c "echo > /dev/tcp/$ip2/80" ||
        fail "$one cannot open a connection to $two at $ip2"
    n=$(cluster__on h2.test nft list chain inet e2e forward | grep -o 'packets [0-9]*' | head -1)
    [ "${n#packets }" -gt 0 ] || fail "no packet from $ip1 arrived at $ip2 with its own address ($n)"
    cluster__on h2.test nft delete table inet e2e

    step "cluster: h1's haproxy serves the site of h2's container, h2's the site of h1's"
    # Each front's certificate is its own host's site issuer's, and verifies against the
    # cluster's one site root (the root alone: the chain comes from the front).
    page=$(cluster__https h1.test "$two") || fail "no HTTPS answer for $two through h1"
    grep -q "<h1>$two</h1>" <<<"$page" || fail "h1 served the wrong page for $two: $page"
    page=$(cluster__https h2.test "$one") || fail "no HTTPS answer for $one through h2"
    grep -q "<h1>$one</h1>" <<<"$page" || fail "h2 served the wrong page for $one: $page"

    step "cluster: every host's srvctl-sync answers ACME challenges behind its haproxy"
    # An unknown token: 404 from srvctl-sync's responder (503 from haproxy if none listened).
    for h in h1.test h2.test h3.test; do
        n=$(cluster__on "$h" curl -sS -o /dev/null -w '%{http_code}' --max-time 5 \
            --resolve "$two:80:127.0.0.1" "http://$two/.well-known/acme-challenge/no-such-token") || true
        [ "$n" = 404 ] || fail "$h: an ACME challenge got $n, not the responder's 404"
    done

    step "cluster: h2 reboots while etcd is out of its reach"
    cluster__on h1.test systemctl stop srvctl-etcd.service
    cluster__on h3.test systemctl stop srvctl-etcd.service
    box_use h2.test
    box_reboot || fail "h2 did not come back"
    [ "$(cluster__on h2.test systemctl is-active srvctl-regenerate.service)" != failed ] ||
        fail "h2's srvctl-regenerate failed at boot without etcd: $(cluster__on h2.test journalctl -b -u srvctl-regenerate --no-pager -n 5)"
    t=${EPOCHREALTIME/./}
    cluster__wait_http "$two" "$ip2" 90 h2.test || fail "after the reboot without etcd, $two does not answer"
    figure "h2 rebooted without etcd: boot to its site answering" "$(cluster__since "$t") s"
    cluster__on h2.test grep -qs '"connected": false' /run/srvctl/sync.json ||
        fail "h2's srvctl-sync does not say etcd is out of reach"
    cluster__on h1.test systemctl start srvctl-etcd.service
    cluster__on h3.test systemctl start srvctl-etcd.service
    t=${EPOCHREALTIME/./}
    until cluster__on h2.test grep -qs '"connected": true' /run/srvctl/sync.json; do
        [ "$(cluster__since "$t" | cut -d. -f1)" -lt 60 ] || fail "h2 does not reach the cluster again"
        sleep 0.2
    done
    figure "etcd back to h2's sync current again" "$(cluster__since "$t") s"
}
