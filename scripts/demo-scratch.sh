#!/usr/bin/env bash
# A tour of srvctl on a scratch root: builds srvctl, installs it into the scratch directory
# with scripts/install.sh (as a package build would), then runs the installed programs there.
# No systemd calls, nothing outside the scratch directory is touched; root is needed only
# once, when scripts/build-deps.sh has build packages to install.
#
#   bash scripts/demo-scratch.sh [DIR]   # DIR defaults to a new temporary directory
#   bash scripts/demo.sh --scratch [DIR] # the same
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "== building srvctl (release)"
bash scripts/build-deps.sh
cargo build --release --locked --bins

root=${1:-$(mktemp -d -t srvctl-demo.XXXXXX)}
echo "== installing into the scratch root with scripts/install.sh (DESTDIR=$root)"
DESTDIR=$root SRVCTL_BIN_DIR=$PWD/target/release bash scripts/install.sh
bin=$root/usr/bin
generator=$root/usr/lib/systemd/system-generators/srvctl-generator
cp example-conf/clusters.json "$root/etc/srvctl/clusters.json"
export SRVCTL_ROOT=$root SRVCTL_HOSTNAME=h1.example.net

run() { printf '\n$ %s\n' "$*"; "$@"; }

run "$bin/sc" add-reseller alice
run "$bin/sc" add-user bob --reseller alice
run "$bin/sc" add-ve web.example.com --user bob
run "$bin/sc" add-ve shop.example.com --user bob
run "$bin/sc" add-ve alpha.ve
run "$bin/sc" put container shop.example.com memory_max 512M
run "$bin/sc" status
run "$bin/sc" get container web.example.com ip
run "$bin/sc" out container web.example.com
run "$bin/sc" regenerate
run "$bin/sc" regenerate
mkdir -p "$root/run/systemd/generator"
run "$generator" "$root/run/systemd/generator" "$root/run/systemd/generator.early" "$root/run/systemd/generator.late"

printf '\n== generated files under %s\n' "$root"
(cd "$root" && find run etc -path etc/srvctl -prune -o \( -type f -o -type l \) -print | sort)
printf '\n== %s\n' "run/systemd/nspawn/web.example.com.nspawn"
cat "$root/run/systemd/nspawn/web.example.com.nspawn"
printf '\n== the audit log\n'
cat "$root/var/lib/srvctl/audit.log"
printf '\nThe scratch root stays in %s for you to look at.\n' "$root"
