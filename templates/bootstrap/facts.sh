# Gathers what bootstrap needs to know, as key=value lines. Must work in POSIX sh on any Linux.
if [ -r /etc/os-release ]; then . /etc/os-release; fi
echo "os_id=${ID:-unknown}"
echo "os_like=${ID_LIKE:-}"
echo "os_version=${VERSION_ID:-}"
echo "os_codename=${VERSION_CODENAME:-}"
echo "arch=$(uname -m)"
echo "kernel=$(uname -r)"
echo "hostname=$(hostname 2>/dev/null || cat /etc/hostname)"
if [ -d /run/systemd/system ]; then echo "init=systemd"
elif command -v openrc >/dev/null 2>&1 || [ -x /sbin/openrc-run ]; then echo "init=openrc"
elif [ -x /sbin/init ] && [ -d /etc/init.d ] && [ "$(cat /proc/1/comm 2>/dev/null)" = init ]; then echo "init=sysv"
else echo "init=none"; fi
if command -v dockerd >/dev/null 2>&1; then
  echo "engine_path=$(command -v dockerd)"
  echo "engine_version=$(dockerd --version 2>/dev/null | sed -n 's/^Docker version \([^,]*\).*/\1/p')"
fi
if [ -S /var/run/docker.sock ] && command -v docker >/dev/null 2>&1 && docker version >/dev/null 2>&1; then echo "engine_running=yes"; else echo "engine_running=no"; fi
echo "bundle_sha=$(cat /usr/local/lib/swarmform/engine.sha256 2>/dev/null)"
if command -v zstd >/dev/null 2>&1; then echo "zstd=yes"; fi
if command -v ufw >/dev/null 2>&1 && ufw status 2>/dev/null | grep -q 'Status: active'; then echo "firewall=ufw"
elif command -v firewall-cmd >/dev/null 2>&1 && firewall-cmd --state >/dev/null 2>&1; then echo "firewall=firewalld"
elif [ -d /run/systemd/system ] && command -v nft >/dev/null 2>&1 && systemctl is-enabled nftables >/dev/null 2>&1; then echo "firewall=nftables"
elif command -v iptables >/dev/null 2>&1 && iptables -S INPUT >/dev/null 2>&1; then echo "firewall=iptables"
elif command -v nft >/dev/null 2>&1; then echo "firewall=nftables"
else echo "firewall=none"; fi
for a in $(hostname -I 2>/dev/null || ip -4 -o addr show scope global 2>/dev/null | awk '{sub(/\/.*/,"",$4); print $4}'); do echo "address=$a"; done
