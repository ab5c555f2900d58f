#!/usr/bin/env bash
# Install what klpgen needs on a Debian/Ubuntu host: the build and VM tools
# from apt (as root), then the npm dependencies (which also compiles klpgen).
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(gcc-12 make flex bison libelf-dev bc libssl-dev dwarves xz-utils qemu-system-x86 busybox-static cpio kmod binutils chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f '${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "klpgen: error: missing packages: ${missing[*]}; run as root or: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "==> apt-get install ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "==> npm ci" >&2
  npm ci --no-audit --no-fund >&2
else
  npx tsc -p tsconfig.json
fi
