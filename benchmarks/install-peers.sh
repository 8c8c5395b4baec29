#!/usr/bin/env bash
# Install the peers that benchmarks/decode.py compares Interlock with (Debian bookworm, as root):
# tshark, GNU time (/usr/bin/time -v for peak memory), taskset (util-linux), dpkt, and
# Suricata 7 from bookworm-backports (bookworm itself ships Suricata 6).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

src=/etc/apt/sources.list.d/backports.sources
if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    $SUDO tee "$src" >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
$SUDO apt-get update -q
# tshark asks whether non-root users may capture; answer "no" without a prompt.
echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
$SUDO apt-get install -y -q --no-install-recommends tshark time util-linux
$SUDO apt-get install -y -q --no-install-recommends -t bookworm-backports suricata
python -m pip install -q "dpkt>=1.9.8"
suricata -V
tshark --version | head -n 1
