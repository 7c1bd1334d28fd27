# shellcheck shell=bash
# diagnose.sh - `sc diagnose` on the host in a box: healthy, then five planted faults, each
# found with its hint, then healthy again once each hint is followed.
#
#   . tests/e2e/lib/box.sh; . tests/e2e/lib/srvctl.sh; . tests/e2e/lib/diagnose.sh
#   diagnose_check STOPPED EXPIRING    plant the faults on sites STOPPED and EXPIRING (both
#                                      running) and check what sc diagnose says
#
# The host's DNS records are asked of the box's dns1 (192.0.2.53 in srvctl_install_in_box's
# clusters.json): a real named runs on that address in the box's network namespace,
# authoritative for test. (h1.test → 192.0.2.1) and for 2.0.192.in-addr.arpa, with or
# without the PTR record of 192.0.2.1.

DIAGNOSE_DNS=192.0.2.53
DIAGNOSE_DIR=

# diagnose__named with-ptr|without-ptr: (re)start the resolver, with or without the PTR.
diagnose__named() {
    local ptr=$1 dir
    if [ -z "$DIAGNOSE_DIR" ]; then
        box__init_run_dir
        DIAGNOSE_DIR=$(mktemp -d "$BOX__RUN_DIR/named.XXXXXX")
        nsenter --net="/proc/$(box_pid)/ns/net" ip addr add "$DIAGNOSE_DNS/32" dev lo
        box_defer diagnose__named_stop
    fi
    dir=$DIAGNOSE_DIR
    diagnose__named_stop
    cat > "$dir/named.conf" <<EOF
options { directory "$dir"; pid-file "$dir/named.pid"; listen-on port 53 { $DIAGNOSE_DNS; };
          listen-on-v6 { none; }; recursion no; };
zone "test" { type primary; file "$dir/test.zone"; };
zone "2.0.192.in-addr.arpa" { type primary; file "$dir/reverse.zone"; };
EOF
    printf '%s\n' '$TTL 60' '@ SOA ns.test. hostmaster.test. 1 60 60 600 60' '@ NS ns.test.' \
        "ns A $DIAGNOSE_DNS" 'h1 A 192.0.2.1' > "$dir/test.zone"
    printf '%s\n' '$TTL 60' '@ SOA ns.test. hostmaster.test. 1 60 60 600 60' '@ NS ns.test.' \
        '53 PTR ns.test.' > "$dir/reverse.zone"
    [ "$ptr" = without-ptr ] || echo '1 PTR h1.test.' >> "$dir/reverse.zone"
    nsenter --net="/proc/$(box_pid)/ns/net" /usr/sbin/named -c "$dir/named.conf" 2> "$dir/named.log" ||
        { cat "$dir/named.log" >&2; return 1; }
    local deadline=$((SECONDS + 20))
    until nsenter --net="/proc/$(box_pid)/ns/net" bash -c "exec 3<>/dev/tcp/$DIAGNOSE_DNS/53" 2>/dev/null; do
        ((SECONDS < deadline)) || { echo "named did not listen on $DIAGNOSE_DNS" >&2; return 1; }
        sleep 0.1
    done
}

diagnose__named_stop() {
    local pid
    pid=$(cat "$DIAGNOSE_DIR/named.pid" 2>/dev/null) || return 0
    kill "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    rm -f "$DIAGNOSE_DIR/named.pid"
}

# diagnose__run: sc diagnose --json in the box; prints the report, returns its exit status.
diagnose__run() { box_run sc diagnose --json; }

# diagnose__has REPORT LEVEL MESSAGE HINT: whether REPORT holds a finding of LEVEL whose
# message contains MESSAGE and whose hint contains HINT.
diagnose__has() {
    python3 -c '
import json, sys
report, level, message, hint = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
sys.exit(not any(f["level"] == level and message in f["message"] and hint in f.get("hint", "")
                 for f in report["findings"]))' "$@"
}

# diagnose__problems REPORT: the problems of REPORT, one per line.
diagnose__problems() {
    python3 -c '
import json, sys
for f in json.loads(sys.argv[1])["findings"]:
    if f["level"] == "problem":
        print(f["check"] + ": " + f["message"] + " -> " + f.get("hint", ""))' "$1"
}

# diagnose__plant_expiring NAME: a real certificate of the site issuer for NAME that expires
# in 5 days, installed as NAME's internal certificate.
diagnose__plant_expiring() {
    local name=$1 dir not_after
    dir=$(mktemp -d "$BOX__RUN_DIR/cert.XXXXXX")
    box_copy_out /var/lib/srvctl/pki/ca.crt "$dir/ca.crt"
    box_copy_out /var/lib/srvctl/pki/ca.key "$dir/ca.key"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
        -addext "subjectAltName=DNS:$name" -keyout "$dir/key.pem" -out "$dir/req.pem" 2>/dev/null
    openssl x509 -req -in "$dir/req.pem" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -days 5 \
        -copy_extensions copy -out "$dir/leaf.pem" 2>/dev/null
    cat "$dir/leaf.pem" "$dir/ca.crt" "$dir/key.pem" > "$dir/site.pem"
    not_after=$(date -u -d "$(openssl x509 -in "$dir/leaf.pem" -noout -enddate | cut -d= -f2)" +%Y-%m-%dT%H:%M:%SZ)
    box_copy_in "$dir/site.pem" "/var/lib/srvctl/certs/$name.pem"
    box_sh 'sed -i "s/\"not_after\": \"[^\"]*\"/\"not_after\": \"$2\"/" "/var/lib/srvctl/certs/$1.json"' \
        "$name" "$not_after"
    rm -rf "$dir"
}

# diagnose__datastore_edit PYTHON: run PYTHON on the box's datastore (as `d`, a dict) and
# write it back in place.
diagnose__datastore_edit() {
    local file
    file=$(mktemp "$BOX__RUN_DIR/datastore.XXXXXX")
    box_copy_out /var/lib/srvctl/datastore.json "$file"
    python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
exec(sys.argv[2])
json.dump(d, open(sys.argv[1], "w"), indent=2)' "$file" "$1"
    box_copy_in "$file" /var/lib/srvctl/datastore.json
    rm -f "$file"
}

diagnose_check() {
    local stopped=$1 expiring=$2 report code
    diagnose__named with-ptr || return 1

    report=$(diagnose__run) || {
        echo "sc diagnose on a healthy host: not healthy:" >&2
        diagnose__problems "$report" >&2
        return 1
    }
    diagnose__has "$report" ok "192.0.2.1 resolves back to h1.test" "" ||
        { echo "sc diagnose did not ask the box's resolver: $report" >&2; return 1; }

    # The five faults.
    box_run systemctl stop "systemd-nspawn@$stopped.service" &&
        box_run systemd-run --quiet --unit=srvctl-planted-fault.service /bin/false &&
        diagnose__plant_expiring "$expiring" &&
        diagnose__datastore_edit 'd["users"]["no such/user"] = {"uid": 1}' &&
        diagnose__named without-ptr || { echo "could not plant the faults" >&2; return 1; }
    local deadline=$((SECONDS + 10))
    until box_run systemctl is-failed --quiet srvctl-planted-fault.service; do
        ((SECONDS < deadline)) || { echo "the planted unit did not fail" >&2; return 1; }
        sleep 0.1
    done

    report=$(diagnose__run) && code=0 || code=$?
    [ "$code" != 0 ] || { echo "sc diagnose exits 0 with five faults: $report" >&2; return 1; }
    local missing=()
    diagnose__has "$report" problem "container $stopped should run but is inactive" "sc $stopped start" ||
        missing+=("the stopped container")
    diagnose__has "$report" problem "unit srvctl-planted-fault.service failed" \
        "journalctl -u srvctl-planted-fault.service" || missing+=("the failed unit")
    diagnose__has "$report" problem "certificate of $expiring expires in 5 days" "sc regenerate" ||
        missing+=("the expiring certificate")
    diagnose__has "$report" problem 'record "no such/user" of users is set aside' \
        "/var/lib/srvctl/datastore.json" || missing+=("the set-aside record")
    diagnose__has "$report" problem "192.0.2.1 has no reverse record (PTR)" "PTR record 192.0.2.1 → h1.test" ||
        missing+=("the missing PTR record")
    if [ "${#missing[@]}" != 0 ]; then
        echo "sc diagnose missed: ${missing[*]}; its problems:" >&2
        diagnose__problems "$report" >&2
        return 1
    fi
    [ "$(diagnose__problems "$report" | wc -l)" = 5 ] ||
        { echo "sc diagnose found more than the five faults:" >&2; diagnose__problems "$report" >&2; return 1; }

    # Each hint followed: healthy again.
    box_run sc "$stopped" start &&
        box_run systemctl reset-failed srvctl-planted-fault.service &&
        box_run srvctl-regenerate >/dev/null &&
        diagnose__datastore_edit 'del d["users"]["no such/user"]' &&
        diagnose__named with-ptr || { echo "could not follow the hints" >&2; return 1; }
    report=$(diagnose__run) || {
        echo "sc diagnose after the fixes: not healthy:" >&2
        diagnose__problems "$report" >&2
        return 1
    }
}
