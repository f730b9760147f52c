#!/usr/bin/env bash
# Benchmark: the shared build cache. Machine A (an empty cache directory) builds recipes/smoke
# cold — the smoke kernel compiled — and pushes every step to a Debian `docker-registry` on
# loopback; machine B (another empty cache directory) builds the same recipe from that registry.
# The peer is what a CI machine without a shared cache does: the cold build itself.
#
#   bench/remote-cache.sh
#
# Prints both wall times, the ratio B/A and the bytes in the registry, and checks that both
# machines made the same image digests. Target: B ≤ 0.05× A (the kernel pulled, not compiled).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
for tool in docker-registry python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool missing; run scripts/install-deps" >&2; exit 1; }
done
cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml" --bin kiln
kiln=$root/target/release/kiln

work=$(mktemp -d)
registry_pid=
cleanup() {
  local status=$?
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null && wait "$registry_pid" 2>/dev/null
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
unset SOURCE_DATE_EPOCH KILN_CACHE_FROM KILN_CACHE_TO

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.05
done
location=http://127.0.0.1:$port/kiln/cache

now() { date +%s.%N; }
build() { # MACHINE ARGS...
  local machine=$1
  shift
  KILN_CACHE=$work/$machine "$kiln" build "$root/recipes/smoke" --out "$work/$machine.out" "$@" \
    >"$work/$machine.digests" 2>"$work/$machine.log"
}

# As scripts/smoke does: the files Debian packages install are re-locked to this host's packages.
echo "bench: re-locking linux, systemd-stub and systemd-boot to this host's Debian packages" >&2
KILN_CACHE=$work/lock "$kiln" lock "$root/recipes/smoke" --update linux --update systemd-stub --update systemd-boot

echo "bench: machine A: cold build of recipes/smoke, pushing to $location" >&2
start=$(now)
build a --cache-to "$location"
a=$(python3 -c "print(f'{$(now) - $start:.1f}')")
echo "bench: machine B: empty cache, pulling from $location" >&2
start=$(now)
build b --cache-from "$location"
b=$(python3 -c "print(f'{$(now) - $start:.1f}')")

cmp -s "$work/a.digests" "$work/b.digests" || {
  echo "bench: the two machines made different images" >&2
  diff "$work/a.digests" "$work/b.digests" >&2
  exit 1
}
kernel_built=$(grep -o 'built  kernel ([0-9a-f]*) in [0-9.]*s' "$work/a.log" || true)
kernel_pulled=$(grep -o 'kernel: pulled [^ ]* [A-Za-z]* in [0-9.]*s' "$work/b.log" || true)
stored=$(du -sh "$work/registry" | cut -f1)
ratio=$(python3 -c "print(f'{$b / $a:.3f}')")
echo
echo "| machine | what | wall s |"
echo "|---|---|---|"
echo "| A | cold build, every step pushed | $a |"
echo "| B | empty cache, every step pulled | $b |"
echo
echo "A: ${kernel_built:-kernel not built?}; B: ${kernel_pulled:-kernel not pulled?}"
echo "registry storage: $stored; B/A = ${ratio}×"
python3 -c "import sys; sys.exit(0 if $ratio <= 0.05 else 1)" && echo "target B ≤ 0.05× A: met" ||
  echo "target B ≤ 0.05× A: MISSED"
