#!/usr/bin/env bash
# Benchmark: `kiln modules depmod` against kmod's `depmod -b` on Debian's real 6.12 amd64 module
# tree (4230 .ko.xz modules), in the same run.
#
#   bench/depmod.sh
#
# The tree is /var/cache/kiln-fixtures/linux-image-6.12-amd64.deb (scripts/install-deps puts it
# there), unpacked once into a temporary directory; each tool indexes its own hard-linked copy.
# The two alternate, KILN_BENCH_RUNS times each (default 5), after one warm-up run of each that
# fills the page cache; the best wall time of each is kept, with that run's CPU time (user +
# system). kmod gets an empty configuration directory (-C), as kiln reads none.
# Target: kiln wall time ≤ 0.5 × kmod's.
#
# Almost all of either tool's CPU time is xz decompression of the modules (liblzma for kmod;
# lzma-rust2 with crc32fast checks for kiln, about 0.8x the CPU); kiln also reads modules on
# every core, so on an idle machine the ratio is about 0.8 / cores plus the serial remainder.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
runs=${KILN_BENCH_RUNS:-5}
deb=/var/cache/kiln-fixtures/linux-image-6.12-amd64.deb
for tool in depmod dpkg-deb /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench: $tool missing; run scripts/install-deps" >&2; exit 1; }
done
[ -e "$deb" ] || { echo "bench: $deb missing; run scripts/install-deps" >&2; exit 1; }

cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml" --bin kiln
kiln=$root/target/release/kiln

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work/deb"
release=$(ls "$work/deb/lib/modules")
mkdir -p "$work/kiln" "$work/kmod" "$work/depmod.d"
cp -al "$work/deb/lib" "$work/kiln/"
cp -al "$work/deb/lib" "$work/kmod/"
modules=$(find "$work/deb/lib/modules" -name '*.ko*' | wc -l)

declare -A best cpu
for ((run = 0; run <= runs; run++)); do
  for tool in kmod kiln; do
    if [ "$tool" = kmod ]; then
      /usr/bin/time -f '%e %U %S' -o "$work/time" depmod -b "$work/kmod" -C "$work/depmod.d" "$release"
    else
      /usr/bin/time -f '%e %U %S' -o "$work/time" "$kiln" modules depmod -b "$work/kiln" "$release"
    fi
    read -r seconds user system <"$work/time"
    used=$(awk -v u="$user" -v s="$system" 'BEGIN{print u+s}')
    if [ "$run" -eq 0 ]; then
      echo "bench: $tool warm-up: ${seconds} s wall, $used s CPU" >&2
      continue
    fi
    echo "bench: $tool run $run: ${seconds} s wall, $used s CPU" >&2
    if [ -z "${best[$tool]:-}" ] || awk "BEGIN{exit !($seconds < ${best[$tool]})}"; then
      best[$tool]=$seconds
      cpu[$tool]=$used
    fi
  done
done

for file in modules.dep modules.dep.bin modules.alias modules.alias.bin modules.softdep modules.symbols \
  modules.symbols.bin modules.builtin.bin modules.builtin.alias.bin modules.devname; do
  cmp -s "$work/kiln/lib/modules/$release/$file" "$work/kmod/lib/modules/$release/$file" \
    || echo "bench: $file differs from kmod's" >&2
done

ratio=$(awk -v a="${best[kiln]}" -v b="${best[kmod]}" 'BEGIN{printf "%.2f", a/b}')
echo
echo "depmod of Debian $release ($modules modules), $(nproc) cores, best of $runs"
printf '%-6s %8s %8s\n' tool "wall s" "CPU s" kmod "${best[kmod]}" "${cpu[kmod]}" kiln "${best[kiln]}" "${cpu[kiln]}"
verdict=$(awk -v r="$ratio" 'BEGIN{print (r <= 0.5) ? "met" : "MISSED"}')
echo "ratio kiln/kmod wall time: ${ratio}x (target <= 0.5x: $verdict)"
