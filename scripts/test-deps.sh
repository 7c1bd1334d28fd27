#!/usr/bin/env bash
# Install the Debian packages the integration tests drive for real (run as root, before
# `cargo test`; CI does). Idempotent and quick when everything is there: apt-get update and
# apt-get install run only when a package is missing.
#
#   systemd            systemd-analyze verify (tests/systemd_verify.rs), systemd-networkd
#                      (tests/networkd_netns.rs), the unit tree under /usr/lib/systemd/system
#   systemd-container  systemd-nspawn and systemd-nspawn@.service (tests/systemd_verify.rs)
#   openvpn            the host mesh tunnels (tests/openvpn_mesh.rs)
#   iproute2           ip netns / ip link / ip addr (tests/openvpn_mesh.rs, networkd_netns.rs)
#   iputils-ping       ping across the mesh (tests/openvpn_mesh.rs)
#   nftables           nft, to load srvctl's masquerade rules (tests/mesh_traffic.rs) and its
#                      firewall table (tests/firewall_nft.rs)
#   util-linux, mount  unshare, setpriv; mount (private mount namespaces of the tests)
#   kmod               modprobe tun, when /dev/net/tun is missing
#   pebble             a test ACME CA and its mock DNS, pebble-challtestsrv (tests/acme_pebble.rs, tests/acme_cluster.rs)
#   openssl, curl      verify the issued chain, fetch pebble's root (tests/acme_pebble.rs)
#   haproxy            haproxy -c and the HTTPS front in a namespace (tests/haproxy_front.rs,
#                      benches/haproxy.rs); openssl and curl check its certificates and redirects
#   busybox            httpd standing in for the containers' sites (tests/haproxy_front.rs)
#   nghttp2-client     h2load, HTTPS load while sites are added live (tests/front_live.rs)
#   openssh-client     ssh-keygen for real test keys, ssh to log in (tests/publickeys.rs)
#   openssh-server     a real sshd whose AuthorizedKeysCommand is srvctl-authorized-keys
#                      (tests/publickeys.rs)
#   etcd-server        real etcd members on loopback for the cluster datastore (tests/cluster_*.rs, tests/acme_cluster.rs)
#   bind9              named, named-checkconf, named-checkzone: the DNS master's zones checked and
#                      served in a namespace (tests/dns_named.rs)
#   bind9-dnsutils     dig, to ask that named (tests/dns_named.rs)
#   testssl.sh         a TLS scan of the HTTPS front (tests/front_tls_scan.rs)
#   etcd-client        etcdctl, the client that checks the members' health and TLS (tests/cluster_etcd.rs)
#   dpkg-dev           dpkg-shlibdeps, the Depends of the Debian package's binaries (scripts/package.sh deb,
#                      tests/packages.rs)
#   rpm                rpmbuild, rpm -qlp: the RPM built and listed (scripts/package.sh rpm, tests/packages.rs)
#   rpmlint            the RPM's spec and package checked (scripts/test.sh)
#   postfix            the host's MX and relay on srvctl's rendered configuration, and a mail
#                      container's postfix delivering to a Maildir (tests/mail_postfix.rs)
#   opendkim           the signing milter on srvctl's rendered configuration (tests/mail_postfix.rs)
#   opendkim-tools     opendkim-testmsg, to verify a signature against the published key
#                      (tests/mail_postfix.rs)
#   swaks              the SMTP client that delivers and tries to relay (tests/mail_postfix.rs)
set -euo pipefail

packages=(systemd systemd-container openvpn iproute2 iputils-ping nftables util-linux mount kmod pebble openssl curl haproxy busybox nghttp2-client openssh-client openssh-server etcd-server etcd-client bind9 bind9-dnsutils testssl.sh dpkg-dev rpm rpmlint postfix opendkim opendkim-tools swaks)

missing=()
for p in "${packages[@]}"; do
    # Installed means "install ok installed", not merely known to dpkg (e.g. removed, config left).
    if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "test-deps: all present (${packages[*]})"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "test-deps: missing ${missing[*]}; run as root to install them" >&2
    exit 1
fi

echo "test-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "test-deps: done"
