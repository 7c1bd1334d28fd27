#!/usr/bin/env bash
# Install srvctl where Fedora and Debian expect it; DESTDIR and PREFIX aware, so a
# distribution package can be built from it:
#
#   scripts/install.sh                      # build (release) and install into /
#   DESTDIR=/tmp/pkg scripts/install.sh     # stage into a package root
#   PREFIX=/usr/local scripts/install.sh
#   SRVCTL_BIN_DIR=target/release scripts/install.sh   # install binaries built elsewhere
#
# What goes where (PREFIX=/usr):
#   /usr/bin/sc, /usr/bin/srvctl, /usr/bin/srvctl-regenerate
#   /usr/libexec/srvctl/srvctl-service    the privileged service that runs sc for non-root
#   /usr/libexec/srvctl/srvctl-authorized-keys   sshd's AuthorizedKeysCommand
#   /etc/ssh/sshd_config.d/50-srvctl.conf  points sshd at it (the path follows PREFIX)
#   /usr/libexec/srvctl/srvctl-gateway    the SSH gateway's userdb service and session program
#   /usr/libexec/srvctl/srvctl-sync       keeps the datastore cache of a cluster host current
#   /usr/libexec/srvctl/post-install      what a host needs once the files are in place (run at
#                                          the end here, and by the packages' scripts): reload
#                                          systemd, create the directories, apply the sysctls,
#                                          raise the host limits, start srvctl.socket, restart a
#                                          haproxy that runs the distribution's configuration
#   /usr/libexec/srvctl/pre-remove        stops what runs srvctl's programs (the packages run it
#                                          before they remove them)
#   /usr/lib/systemd/system-generators/srvctl-generator
#   /usr/lib/systemd/system/srvctl-regenerate.service, srvctl-mesh@.service, srvctl-nat.service
#                                          (the containers' masquerade; needs nft, package nftables)
#                                          srvctl-etcd.service (the cluster's etcd member)
#                                          srvctl-firewall.service (srvctl's nftables firewall
#                                          on a host without firewalld; `sc update-install`
#                                          writes its table and enables it, with the units
#                                          srvctl needs)
#   /usr/lib/systemd/system/haproxy.service.d/srvctl.conf   haproxy runs srvctl's front
#                                          (/run/srvctl/haproxy/haproxy.cfg); the distribution's
#                                          /etc/haproxy/haproxy.cfg is left alone
#   /usr/lib/systemd/system/named.service.d/srvctl.conf     named starts after srvctl-regenerate
#                                          (its zones, docs/dns.md)
#   /usr/lib/systemd/system/srvctl-certificates.service and .timer (the
#                                          generator links the timer into timers.target)
#                                          srvctl.socket and srvctl.service; the socket is
#                                          shipped wanted by sockets.target (a link in
#                                          sockets.target.wants/ here), so it listens from the
#                                          next boot (or `systemctl start srvctl.socket`);
#                                          nothing else is enabled
#   /usr/lib/tmpfiles.d/srvctl.conf        /etc/srvctl, /var/lib/srvctl, /run/srvctl (0755)
#   /usr/lib/sysctl.d/50-srvctl.conf       IPv4 forwarding (bridges, mesh tunnels, uplink) and a
#                                          loose reverse-path filter (the mesh routes asymmetrically)
#   /usr/lib/systemd/system/srvctl-gateway.service, srvctl-gateway-userdb.socket and .service
#                                          (enable them for the SSH gateway on port 2222)
#   /usr/lib/systemd/system/srvctl-postfix.service, srvctl-opendkim.service
#                                          postfix and OpenDKIM on srvctl's configuration
#                                          (/run/srvctl/mail, docs/mail.md); `sc update-install`
#                                          enables them in place of the distribution's units
#   /usr/share/srvctl/gateway/sshd_config, banner   the gateway's sshd configuration
#   /usr/share/srvctl/templates/*          reference copies; built into the binaries, and
#                                          overridden by /etc/srvctl/templates/NAME
#   /usr/share/doc/srvctl/example-conf/*
#   /usr/share/man/man1/sc.1.gz (and srvctl.1.gz) and sc-COMMAND.1.gz, man8/srvctl-*.8.gz, bash/zsh/fish completion
#   /etc/srvctl/ (0755), /var/lib/srvctl/ (0755)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr}
bin_dir=${SRVCTL_BIN_DIR:-}

if [ -z "$bin_dir" ]; then
    echo "install: building release binaries…"
    bash "$here/scripts/build-deps.sh"
    cargo build --release --locked --manifest-path "$here/Cargo.toml" --bins
    bin_dir="$here/target/release"
fi

unit_dir=$PREFIX/lib/systemd/system
generator_dir=$PREFIX/lib/systemd/system-generators
share=$PREFIX/share
libexec=$PREFIX/libexec/srvctl
sshd_dir=/etc/ssh/sshd_config.d
sysctl_dir=$PREFIX/lib/sysctl.d
tmpfiles_dir=$PREFIX/lib/tmpfiles.d

install -d -m 0755 "$DESTDIR$PREFIX/bin" "$DESTDIR$unit_dir" "$DESTDIR$generator_dir" \
    "$DESTDIR$libexec" "$DESTDIR$unit_dir/sockets.target.wants" \
    "$DESTDIR$share/srvctl/templates" "$DESTDIR$share/doc/srvctl/example-conf" \
    "$DESTDIR$share/srvctl/gateway" \
    "$DESTDIR$share/man/man1" "$DESTDIR$share/man/man8" "$DESTDIR$share/bash-completion/completions" \
    "$DESTDIR$share/zsh/site-functions" "$DESTDIR$share/fish/vendor_completions.d" \
    "$DESTDIR/etc/srvctl" "$DESTDIR/var/lib/srvctl" "$DESTDIR$sshd_dir" "$DESTDIR$sysctl_dir" \
    "$DESTDIR$tmpfiles_dir"

install -m 0755 "$bin_dir/sc" "$bin_dir/srvctl" "$bin_dir/srvctl-regenerate" "$DESTDIR$PREFIX/bin/"
install -m 0755 "$bin_dir/srvctl-generator" "$DESTDIR$generator_dir/"
install -m 0755 "$bin_dir/srvctl-service" "$bin_dir/srvctl-gateway" "$bin_dir/srvctl-sync" "$DESTDIR$libexec/"
# sshd runs it as root and refuses it unless it and every directory above it are root's and
# not group- or world-writable: install -d and install -m 0755 as root give exactly that.
install -m 0755 "$bin_dir/srvctl-authorized-keys" "$DESTDIR$libexec/"

# Copy a file shipped with srvctl's own paths to $2 under PREFIX, mode 0644.
install_prefixed() {
    # Only srvctl's own programs move with PREFIX (not /usr/bin/etcd of the distribution).
    sed -e "s|/usr/bin/sc |$PREFIX/bin/sc |g" -e "s|/usr/bin/srvctl|$PREFIX/bin/srvctl|g" -e "s|/usr/libexec/srvctl/|$libexec/|g" \
        -e "s|/usr/share/srvctl/|$share/srvctl/|g" -e "s|/usr/share/doc/srvctl/|$share/doc/srvctl/|g" "$1" > "$2"
    chmod 0644 "$2"
}
install_prefixed "$here/conf/sshd/50-srvctl.conf" "$DESTDIR$sshd_dir/50-srvctl.conf"
install -m 0644 "$here/conf/sysctl/50-srvctl.conf" "$DESTDIR$sysctl_dir/50-srvctl.conf"
install -m 0644 "$here/conf/tmpfiles/srvctl.conf" "$DESTDIR$tmpfiles_dir/srvctl.conf"
for script in post-install pre-remove; do
    install_prefixed "$here/packaging/$script" "$DESTDIR$libexec/$script"
    chmod 0755 "$DESTDIR$libexec/$script"
done
for unit in "$here"/units/*; do
    if [ -d "$unit" ]; then
        # Drop-ins for the distribution's units (haproxy.service.d/srvctl.conf).
        mkdir -p "$DESTDIR$unit_dir/$(basename "$unit")"
        for dropin in "$unit"/*; do
            install_prefixed "$dropin" "$DESTDIR$unit_dir/$(basename "$unit")/$(basename "$dropin")"
        done
        continue
    fi
    install_prefixed "$unit" "$DESTDIR$unit_dir/$(basename "$unit")"
done
for file in "$here"/conf/gateway/*; do
    install_prefixed "$file" "$DESTDIR$share/srvctl/gateway/$(basename "$file")"
done
ln -sfn ../srvctl.socket "$DESTDIR$unit_dir/sockets.target.wants/srvctl.socket"
install -m 0644 "$here"/templates/* "$DESTDIR$share/srvctl/templates/"
install -m 0644 "$here"/example-conf/* "$DESTDIR$share/doc/srvctl/example-conf/"

# The pages of sc, of each of its commands (man1) and of srvctl's programs (man8).
man_stage=$(mktemp -d)
"$bin_dir/sc" man --dir "$man_stage" >/dev/null
install -m 0644 "$man_stage"/*.1 "$DESTDIR$share/man/man1/"
install -m 0644 "$man_stage"/*.8 "$DESTDIR$share/man/man8/"
# Compressed as both distributions ship them (reproducibly: no name, no time stamp).
gzip -9nf "$DESTDIR$share/man/man1"/sc*.1 "$DESTDIR$share/man/man8"/srvctl*.8
# srvctl is sc under its other name.
ln -sfn sc.1.gz "$DESTDIR$share/man/man1/srvctl.1.gz"
rm -rf "$man_stage"
"$bin_dir/sc" completion bash > "$DESTDIR$share/bash-completion/completions/sc"
"$bin_dir/sc" completion zsh > "$DESTDIR$share/zsh/site-functions/_sc"
"$bin_dir/sc" completion fish > "$DESTDIR$share/fish/vendor_completions.d/sc.fish"

echo "install: srvctl installed under ${DESTDIR:-/} (prefix $PREFIX)"
# Into a package root, the package's own scripts run it when the package is installed.
[ -n "$DESTDIR" ] || "$libexec/post-install"
