# shellcheck shell=bash
# tenants.sh - the tenants' checks of host-in-a-box.sh, in its booted box with srvctl installed:
# users who are not root acting through the privileged service, their scopes, the audit, SSH
# keys, the SSH gateway on port 2222 (ssh, exit codes, sftp) and `ssh USER@host sc`.
#
#   tenants_check       needs reseller alice with user bob (UID 20257), and the site image
#
# Uses fail, step and figure of the calling script.

# Run a command in the box as account $1 (resolved through userdb), with no privilege left.
tenants__as() {
    local who=$1
    shift
    box_run setpriv --reuid="$who" --regid="$who" --init-groups --reset-env -- "$@"
}

# The datastore's checksum, to prove a refused command changed nothing.
tenants__sum() { box_run sha256sum /var/lib/srvctl/datastore.json | cut -d' ' -f1; }

# The mean wall time of 10 runs of a command in the box, in milliseconds.
tenants__ms() {
    local t i
    t=${EPOCHREALTIME/./}
    for i in 1 2 3 4 5 6 7 8 9 10; do "$@" >/dev/null 2>&1 || true; done
    echo "$(((${EPOCHREALTIME/./} - t) / 10000)) ms"
}

# ssh options of every login: no known_hosts prompts, keys only.
TENANTS_SSH_OPTS="-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR"

tenants_check() {
    local bob_site=bob-site.example.com carol_site=carol-site.example.com out sum code code2 state
    local gw="-p 2222 $TENANTS_SSH_OPTS"

    step "tenants: the SSH gateway's units"
    box_run systemctl enable --now srvctl-gateway-userdb.socket srvctl-gateway.service >/dev/null 2>&1 ||
        fail "cannot start the SSH gateway"
    box_run systemctl is-active srvctl.socket >/dev/null || fail "srvctl.socket is not listening after the reboot"

    step "tenants: accounts, keys and homes"
    box_run sc add-reseller dave
    box_run sc add-user carol --reseller dave
    box_sh 'test -d /home/bob && [ "$(stat -c %U:%a /home/bob)" = bob:700 ]' || fail "/home/bob is not bob's with mode 0700"
    box_sh 'mkdir -p /tmp/keys && cd /tmp/keys && for k in bob carol; do
                ssh-keygen -q -t ed25519 -N "" -C "$k@e2e" -f $k; done && chmod 0755 /tmp/keys && chmod 0644 /tmp/keys/*.pub'
    out=$(tenants__as bob sc add-publickey /tmp/keys/bob.pub) || fail "bob cannot add his key: $out"
    grep -q 'SHA256:' <<<"$out" || fail "add-publickey shows no fingerprint: $out"
    tenants__as carol sc add-publickey /tmp/keys/carol.pub >/dev/null || fail "carol cannot add her key"

    step "tenants: bob adds a site through the privileged service"
    out=$(tenants__as bob sc add-ve "$bob_site") || fail "bob: sc add-ve $bob_site: $out"
    local ip=${out##* }
    [ "$(box_run sc get container "$bob_site" bridge)" = "$(box_run sc get container "$one" bridge)" ] ||
        fail "$bob_site is not on bob's bridge"
    srvctl_wait_http "$bob_site" "$ip" 60 || fail "$bob_site does not answer HTTP at $ip"
    tenants__as carol sc add-ve "$carol_site" --no-start >/dev/null || fail "carol: sc add-ve"

    step "tenants: scopes"
    out=$(tenants__as bob sc status)
    grep -q "$bob_site" <<<"$out" && ! grep -q "$carol_site" <<<"$out" || fail "bob's sc status: $out"
    out=$(tenants__as carol sc status)
    grep -q "$bob_site" <<<"$out" && fail "carol sees bob's site: $out"
    sum=$(tenants__sum)
    set +e
    out=$(tenants__as carol sc destroy-ve "$bob_site" --force 2>&1); code=$?
    set -e
    [ "$code" = 3 ] && [ "$(wc -l <<<"$out")" = 1 ] || fail "carol's destroy-ve of bob's site: exit $code: $out"
    [ "$(tenants__sum)" = "$sum" ] || fail "carol's refused destroy-ve changed the datastore"
    tenants__as alice sc "$bob_site" stop >/dev/null || fail "reseller alice cannot stop bob's site"
    tenants__as alice sc "$bob_site" start >/dev/null || fail "reseller alice cannot start bob's site"
    srvctl_wait_http "$bob_site" "$ip" 60 || fail "$bob_site does not come back after alice's start"
    tenants__as alice sc "$carol_site" stop >/dev/null 2>&1 && fail "alice stopped carol's site (another reseller's)"

    step "tenants: the audit names the caller the kernel names"
    tenants__as bob env SUDO_USER=root sc "$bob_site" status >/dev/null
    box_run tail -n 1 /var/lib/srvctl/audit.log | grep -q '"user":"bob"' ||
        fail "bob's request is not audited as bob: $(box_run tail -n 1 /var/lib/srvctl/audit.log)"
    sum=$(tenants__sum)
    box_sh 'printf %s "{\"argv\":[\"destroy-ve\",\"$1\",\"--force\"],\"uid\":0,\"user\":\"root\"}" |
        setpriv --reuid=carol --regid=carol --init-groups socat -t 5 - UNIX-CONNECT:/run/srvctl/sc.socket' "$bob_site" >/dev/null 2>&1 || true
    [ "$(tenants__sum)" = "$sum" ] || fail "a hand-crafted request that claims root changed the datastore"

    step "tenants: SSH into containers on port 2222"
    local t
    t=${EPOCHREALTIME/./}
    out=$(box_run ssh $gw -i /tmp/keys/bob "bob_${bob_site}_root@h1.test" hostname) || fail "ssh through the gateway: $out"
    [ "$out" = "$bob_site" ] || fail "the gateway's ssh printed '$out', expected $bob_site"
    figure "ssh … hostname through the gateway" "$(box_elapsed "$t") s"
    set +e
    box_run ssh $gw -i /tmp/keys/bob "bob_${bob_site}_root@h1.test" 'exit 7'; code=$?
    set -e
    [ "$code" = 7 ] || fail "the gateway passed exit code $code, expected 7"
    box_sh 'printf "<h1>uploaded by sftp</h1>\n" > /tmp/index.html
            printf "put /tmp/index.html /var/www/html/index.html\n" > /tmp/sftp.batch'
    box_run sftp -P 2222 $TENANTS_SSH_OPTS -i /tmp/keys/bob -b /tmp/sftp.batch "bob_${bob_site}_www@h1.test" >/dev/null ||
        fail "sftp upload through the gateway"
    out=$(box_run curl -fsS --max-time 5 --resolve "$bob_site:443:127.0.0.1" \
        --cacert /var/lib/srvctl/pki/ca.crt "https://$bob_site/") || fail "no HTTPS answer for $bob_site"
    grep -q 'uploaded by sftp' <<<"$out" || fail "the front does not serve the uploaded page: $out"
    set +e
    box_run ssh $gw -i /tmp/keys/carol "bob_${bob_site}_root@h1.test" true 2>/dev/null; code=$?
    [ "$code" = 255 ] || fail "carol's key opened bob's login (exit $code)"
    out=$(box_run ssh $gw -i /tmp/keys/bob "bob_${carol_site}_root@h1.test" true 2>&1); code=$?
    set -e
    [ "$code" != 0 ] && grep -q "$carol_site" <<<"$out" || fail "bob's login into carol's site: exit $code: $out"

    step "tenants: timings"
    figure "sc status as root (mean of 10)" "$(tenants__ms box_run sc status)"
    figure "sc status as bob through the service (mean of 10)" "$(tenants__ms tenants__as bob sc status)"
    figure "ssh … true through the gateway (mean of 10)" \
        "$(tenants__ms box_run ssh $gw -i /tmp/keys/bob "bob_${bob_site}_root@h1.test" true)"
    # The container's own sshd, for comparison: bob's key for its root, written from inside.
    # No sshd idles in the container: its socket starts one per connection.
    box_sh 'sc "$1" exec sh -c "mkdir -p -m 0700 /root/.ssh && cat > /root/.ssh/authorized_keys" < /tmp/keys/bob.pub' "$bob_site"
    state=$(box_sh 'systemctl -M "$1" is-active ssh.socket ssh.service || true' "$bob_site")
    [ "$(echo $state)" = "active inactive" ] || fail "$bob_site: ssh.socket and ssh.service are $(echo $state), not active and inactive"
    box_run ssh $TENANTS_SSH_OPTS -i /tmp/keys/bob "root@$ip" true ||
        fail "no login through the socket-activated sshd of $bob_site at $ip"
    figure "ssh … true straight to the container's socket-activated sshd (mean of 10)" \
        "$(tenants__ms box_run ssh $TENANTS_SSH_OPTS -i /tmp/keys/bob "root@$ip" true)"

    step "tenants: ssh bob@h1 sc status"
    out=$(box_run ssh $TENANTS_SSH_OPTS -i /tmp/keys/bob bob@h1.test sc status) || fail "ssh bob@h1.test sc status: $out"
    grep -q "$bob_site" <<<"$out" || fail "sc status over ssh: $out"

    step "tenants: a removed key opens nothing"
    local fingerprint
    fingerprint=$(box_run ssh-keygen -l -f /tmp/keys/bob.pub | cut -d' ' -f2)
    tenants__as bob sc remove-publickey "$fingerprint" >/dev/null || fail "bob cannot remove his key"
    set +e
    box_run ssh $gw -i /tmp/keys/bob "bob_${bob_site}_root@h1.test" true 2>/dev/null; code=$?
    box_run ssh $TENANTS_SSH_OPTS -i /tmp/keys/bob bob@h1.test true 2>/dev/null; code2=$?
    set -e
    [ "$code" = 255 ] && [ "$code2" = 255 ] || fail "bob's removed key still opens a login ($code, $code2)"

    step "tenants: 20 users add a site at the same moment"
    local i
    for i in $(seq -w 1 20); do
        box_run sc add-user "tenant$i" --reseller alice >/dev/null || fail "sc add-user tenant$i"
    done
    box_sh 'for i in $(seq -w 1 20); do
                setpriv --reuid=tenant$i --regid=tenant$i --init-groups --reset-env \
                    sc add-ve "site$i.example.com" --no-start > /tmp/add-$i.out 2>&1 &
            done; wait'
    out=$(box_sh 'for i in $(seq -w 1 20); do sc get container "site$i.example.com" ip; done | sort -u | wc -l')
    [ "$out" = 20 ] || fail "20 concurrent add-ve gave $out distinct containers: $(box_run cat /tmp/add-*.out)"
}
