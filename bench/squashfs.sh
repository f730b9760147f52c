#!/usr/bin/env bash
# Benchmark: kiln's squashfs writer against mksquashfs, measured in the same run.
#
#   bench/squashfs.sh [--quick]
#
# Trees:
#   small — an extension-like tree: a manifest, two licence texts and two binaries (busybox and
#           unsquashfs, ~2 MB) under usr/local, built in a temporary directory;
#   large — the Linux 6.12 source from Debian's linux-source-6.12 (~1.5 GB, ~92k entries),
#           extracted once into $KILN_BENCH_DIR (default ~/.cache/kiln-bench), or
#           $KILN_BENCH_TREE if set. --quick (or KILN_BENCH_QUICK=1) takes its drivers/net.
#
# Peer: `mksquashfs DIR OUT -comp zstd -Xcompression-level 18 -all-root -noappend -no-progress`,
# as Talos runs it (it uses every core). kiln: `layers/examples/squashfs.rs` with one compression
# thread per core. The two alternate, $KILN_BENCH_RUNS times each (default 3; 10 for the small
# tree) after a warm-up of each, and the best wall time is kept with its CPU time and the peak
# RSS. The script also checks that both images list the same paths, modes and sizes
# (`unsquashfs -lln`, dates aside: mksquashfs keeps the host's mtimes).
# Target (2 cores): kiln wall time ≤ 1× mksquashfs's, for both trees.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
quick=${KILN_BENCH_QUICK:-0}
[ "${1:-}" = "--quick" ] && quick=1

for tool in /usr/bin/time mksquashfs unsquashfs busybox; do
  command -v "$tool" >/dev/null || { echo "bench: $tool missing; run scripts/install-deps" >&2; exit 1; }
done

cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml" -p kiln-layers --example squashfs
kiln=$root/target/release/examples/squashfs

large=${KILN_BENCH_TREE:-}
if [ -z "$large" ]; then
  # shellcheck source=bench/linux-tree.sh
  . "$root/bench/linux-tree.sh"
  large=$(linux_tree)
  [ "$quick" = 1 ] && large=$large/drivers/net
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export SOURCE_DATE_EPOCH=0
cores=$(nproc)

small=$work/small
mkdir -p "$small/usr/local/bin" "$small/usr/local/share/doc/ext"
cp "$(command -v busybox)" "$(command -v unsquashfs)" "$small/usr/local/bin/"
cp /usr/share/common-licenses/GPL-2 /usr/share/common-licenses/Apache-2.0 "$small/usr/local/share/doc/ext/"
printf 'version: v1alpha1\nmetadata:\n  name: bench\n  version: 1.0.0\n' >"$small/manifest.yaml"

declare -A wall cpu rss
# once NAME COMMAND…: one run; keeps the best wall time (with its CPU time) and the largest RSS.
once() {
  local name=$1; shift
  local w u s r
  /usr/bin/time -f '%e %U %S %M' -o "$work/time" "$@" >/dev/null
  read -r w u s r <"$work/time"
  if [ -z "${wall[$name]:-}" ] || awk "BEGIN{exit !($w < ${wall[$name]})}"; then
    wall[$name]=$w
    cpu[$name]=$(awk -v u="$u" -v s="$s" 'BEGIN{printf "%.2f", u + s}')
  fi
  if [ -z "${rss[$name]:-}" ] || [ "$r" -gt "${rss[$name]}" ]; then rss[$name]=$r; fi
}

# listing IMAGE: paths, modes, owners and file sizes as unsquashfs shows them (no dates, and no
# directory sizes, which depend on how each tool splits directory headers).
listing() { unsquashfs -lln -d R "$1" | awk '{ $4 = ""; $5 = ""; if ($1 ~ /^d/) $3 = ""; print }'; }

# compare LABEL TREE RUNS
compare() {
  local label=$1 tree=$2 runs=$3 i
  local k=kiln-$label m=mksquashfs-$label
  echo "bench: $label tree $tree, $runs runs each" >&2
  tar -cf - -C "$tree" . >/dev/null
  "$kiln" "$tree" "$work/$k.sqsh" --threads "$cores" >/dev/null
  mksquashfs "$tree" "$work/$m.sqsh" -comp zstd -Xcompression-level 18 -all-root -noappend -no-progress -quiet
  if ! cmp -s <(listing "$work/$k.sqsh") <(listing "$work/$m.sqsh"); then
    echo "bench: the $label images list different entries" >&2
    diff <(listing "$work/$k.sqsh") <(listing "$work/$m.sqsh") | head >&2
    exit 1
  fi
  for ((i = 0; i < runs; i++)); do
    once "$k" "$kiln" "$tree" "$work/$k.sqsh" --threads "$cores"
    once "$m" mksquashfs "$tree" "$work/$m.sqsh" -comp zstd -Xcompression-level 18 -all-root -noappend -no-progress -quiet
  done
  files[$label]=$(find "$tree" | wc -l)
  input[$label]=$(du -sb "$tree" | cut -f1)
}

declare -A files input
compare small "$small" "${KILN_BENCH_RUNS:-10}"
compare large "$large" "${KILN_BENCH_RUNS:-3}"

echo
echo "$cores cores; zstd level 18, 128 KiB blocks"
printf '%-17s %9s %8s %8s %10s %10s\n' run "entries" "wall s" "CPU s" "peak MiB" "image MB"
for label in small large; do
  for tool in kiln mksquashfs; do
    name=$tool-$label
    awk -v n="$name" -v f="${files[$label]}" -v w="${wall[$name]}" -v c="${cpu[$name]}" -v r="${rss[$name]}" \
      -v s="$(stat -c %s "$work/$name.sqsh")" \
      'BEGIN{printf "%-17s %9d %8.2f %8.2f %10.1f %10.2f\n", n, f, w, c, r/1024, s/1e6}'
  done
done
echo

check() { if awk "BEGIN{exit !($2)}"; then echo "met    $1"; else echo "MISSED $1"; fi; }
for label in small large; do
  ratio=$(awk -v a="${wall[kiln-$label]}" -v b="${wall[mksquashfs-$label]}" 'BEGIN{printf "%.2f", a/b}')
  echo "kiln/mksquashfs wall time, $label tree ($(awk -v i="${input[$label]}" 'BEGIN{printf "%.1f", i/1e6}') MB): ${ratio}x"
  check "$label tree: kiln ≤ 1× mksquashfs (${ratio}x)" "$ratio <= 1"
done
