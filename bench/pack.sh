#!/usr/bin/env bash
# Benchmark: `kiln pack` of a large real tree against the peer tools, measured in the same run.
#
#   bench/pack.sh [--quick]
#
# Tree: the Linux 6.12 source from Debian's linux-source-6.12 (~1.5 GB, ~90k files), extracted
# once into $KILN_BENCH_DIR (default ~/.cache/kiln-bench), or $KILN_BENCH_TREE if set.
# --quick (or KILN_BENCH_QUICK=1) packs only its drivers/net subtree.
#
# Peers: GNU `tar --sort=name … | gzip -n -6` (the reproducible-tar recipe), the same piped to
# `zstd -3 -T0`, and `umoci repack` (gzip). Each is run $KILN_BENCH_RUNS times (default 3) and
# the best wall time is reported, after a pass that warms the page cache.
# Targets (2 cores): kiln gzip-6 ≥ 3× GNU tar|gzip; kiln zstd-3 ≥ 200 MB/s; kiln peak RSS < 100 MB.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
quick=${KILN_BENCH_QUICK:-0}
[ "${1:-}" = "--quick" ] && quick=1

for tool in /usr/bin/time tar gzip zstd umoci; do
  command -v "$tool" >/dev/null || { echo "bench: $tool missing; run scripts/install-deps" >&2; exit 1; }
done

cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml" --bin kiln
kiln=$root/target/release/kiln

tree=${KILN_BENCH_TREE:-}
if [ -z "$tree" ]; then
  # shellcheck source=bench/linux-tree.sh
  . "$root/bench/linux-tree.sh"
  tree=$(linux_tree)
  [ "$quick" = 1 ] && tree=$tree/drivers/net
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export SOURCE_DATE_EPOCH=0

echo "bench: warming the page cache" >&2
tar -cf - -C "$tree" . >/dev/null
files=$(find "$tree" | wc -l)

# measure NAME COMMAND…: best wall seconds and largest peak RSS (KiB, largest single process)
# of COMMAND over $runs runs. kiln writes a new layout each run.
runs=${KILN_BENCH_RUNS:-3}
declare -A wall rss
measure() {
  local name=$1; shift
  local i w r
  for ((i = 0; i < runs; i++)); do
    case $name in kiln-*) rm -rf "${work:?}/$name" ;; esac
    /usr/bin/time -f '%e %M' -o "$work/time.$name" "$@" >"$work/stdout.$name"
    read -r w r <"$work/time.$name"
    if [ -z "${wall[$name]:-}" ] || awk "BEGIN{exit !($w < ${wall[$name]})}"; then wall[$name]=$w; fi
    if [ -z "${rss[$name]:-}" ] || [ "$r" -gt "${rss[$name]}" ]; then rss[$name]=$r; fi
  done
}

measure kiln-gzip "$kiln" pack "$tree" --ref bench:gzip --out "$work/kiln-gzip" --compression gzip:6 --json
measure kiln-zstd "$kiln" pack "$tree" --ref bench:zstd --out "$work/kiln-zstd" --compression zstd:3 --json
measure kiln-none "$kiln" pack "$tree" --ref bench:none --out "$work/kiln-none" --compression none --json
gnu_tar="tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C '$tree' -cf - ."
measure tar-gzip bash -c "$gnu_tar | gzip -n -6 >'$work/tar.gz'"
measure tar-zstd bash -c "$gnu_tar | zstd -q -3 -T0 >'$work/tar.zst'"

umoci init --layout "$work/umoci" >/dev/null
umoci new --image "$work/umoci:b" >/dev/null
umoci unpack --rootless --image "$work/umoci:b" "$work/bundle" >/dev/null
cp -a "$tree/." "$work/bundle/rootfs/"
# A second repack of the same bundle would pack an empty diff, so umoci runs once.
runs=1 measure umoci umoci repack --image "$work/umoci:b" "$work/bundle"

input=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["uncompressedSize"])' "$work/stdout.kiln-none")
out_size() {
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layer"]["size"])' "$work/stdout.$1"
}
declare -A size=(
  [kiln-gzip]=$(out_size kiln-gzip) [kiln-zstd]=$(out_size kiln-zstd) [kiln-none]=$(out_size kiln-none)
  [tar-gzip]=$(stat -c %s "$work/tar.gz") [tar-zstd]=$(stat -c %s "$work/tar.zst")
  [umoci]=$(find "$work/umoci/blobs" -type f -size +1M -printf '%s\n' | sort -n | tail -1)
)

echo
echo "tree: $tree ($files entries, $(awk -v b="$input" 'BEGIN{printf "%.0f", b/1e6}') MB as tar), $(nproc) cores"
printf '%-10s %8s %9s %10s %10s %7s\n' tool "wall s" "MB/s" "peak MiB" "out MB" ratio
for name in kiln-gzip tar-gzip umoci kiln-zstd tar-zstd kiln-none; do
  awk -v n="$name" -v w="${wall[$name]}" -v r="${rss[$name]}" -v s="${size[$name]}" -v i="$input" \
    'BEGIN{printf "%-10s %8.2f %9.1f %10.1f %10.1f %7.3f\n", n, w, i/w/1e6, r/1024, s/1e6, s/i}'
done
echo "(peak MiB is the largest single process; for pipelines that is the largest stage)"
echo

ratio() { awk -v a="${wall[$2]}" -v b="${wall[$1]}" 'BEGIN{printf "%.2f", a/b}'; }
check() { if awk "BEGIN{exit !($2)}"; then echo "met    $1"; else echo "MISSED $1"; fi; }
gzip_ratio=$(ratio kiln-gzip tar-gzip)
echo "kiln gzip-6 vs GNU tar|gzip -6: ${gzip_ratio}x   vs umoci repack: $(ratio kiln-gzip umoci)x"
echo "kiln zstd-3 vs GNU tar|zstd -3 -T0: $(ratio kiln-zstd tar-zstd)x"
zstd_rate=$(awk -v i="$input" -v w="${wall[kiln-zstd]}" 'BEGIN{printf "%.0f", i/w/1e6}')
max_rss=$(printf '%s\n' "${rss[kiln-gzip]}" "${rss[kiln-zstd]}" "${rss[kiln-none]}" | sort -n | tail -1)
check "gzip-6 ≥ 3× GNU tar|gzip (${gzip_ratio}x)" "$gzip_ratio >= 3"
check "zstd-3 ≥ 200 MB/s (${zstd_rate} MB/s)" "$zstd_rate >= 200"
check "kiln peak RSS < 100 MB ($((max_rss / 1024)) MiB)" "$max_rss < 100 * 1024"
