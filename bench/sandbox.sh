#!/usr/bin/env bash
# Benchmark: the cost of the build sandbox — the same C build with `make -j2`, directly and in
# `kiln sandbox`, in the same run.
#
#   bench/sandbox.sh
#
# Project: the Linux 6.12 kernel (Debian's linux-source-6.12) with tinyconfig, built out of
# tree (`make O=…`) from the read-only source each time: `make tinyconfig && make -j2 vmlinux`.
# The two ways alternate, KILN_BENCH_RUNS times each (default 3); the best wall time of each is
# kept, and the CPU time (user + system) of that run is shown, which page-cache noise on a small
# machine does not move.
# Target: sandbox overhead ≤ 3 % of wall time.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
runs=${KILN_BENCH_RUNS:-3}
for tool in make gcc flex bison bc /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench: $tool missing; run scripts/install-deps" >&2; exit 1; }
done

cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml" --bin kiln
kiln=$root/target/release/kiln

# shellcheck source=bench/linux-tree.sh
. "$root/bench/linux-tree.sh"
tree=$(linux_tree)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
script='make -s -C /inputs/linux O=/build/obj tinyconfig && make -s -C /inputs/linux O=/build/obj -j2 vmlinux'
declare -A best cpu
for ((run = 0; run < runs; run++)); do
  for way in direct sandbox; do
    rm -rf "$work/build" "$work/out"
    mkdir -p "$work/build" "$work/out"
    if [ "$way" = direct ]; then
      # The same script with the same environment, outside the sandbox.
      direct=${script//\/inputs\/linux/$tree}
      direct=${direct//\/build/$work/build}
      (cd "$work/build" && /usr/bin/time -f '%e %U %S' -o "$work/time" env -i PATH=/usr/bin:/bin:/usr/sbin:/sbin \
        LC_ALL=C TZ=UTC HOME="$work/build" SOURCE_DATE_EPOCH=0 sh -ec "$direct" </dev/null >/dev/null 2>"$work/log") \
        || { cat "$work/log" >&2; exit 1; }
    else
      SOURCE_DATE_EPOCH=0 /usr/bin/time -f '%e %U %S' -o "$work/time" "$kiln" sandbox --build "$work/build" \
        --out "$work/out" --input "$tree:/inputs/linux" "$script" </dev/null >/dev/null 2>"$work/log" \
        || { cat "$work/log" >&2; exit 1; }
    fi
    read -r seconds user system <"$work/time"
    echo "bench: $way run $((run + 1)): ${seconds} s wall, $(awk -v u="$user" -v s="$system" 'BEGIN{print u+s}') s CPU" >&2
    if [ -z "${best[$way]:-}" ] || awk "BEGIN{exit !($seconds < ${best[$way]})}"; then
      best[$way]=$seconds
      cpu[$way]=$(awk -v u="$user" -v s="$system" 'BEGIN{print u+s}')
    fi
  done
done

overhead=$(awk -v d="${best[direct]}" -v s="${best[sandbox]}" 'BEGIN{printf "%.1f", (s-d)/d*100}')
echo
echo "Linux 6.12 tinyconfig, make -j2 vmlinux, $(nproc) cores, best of $runs"
printf '%-8s %8s %8s\n' way "wall s" "CPU s" direct "${best[direct]}" "${cpu[direct]}" sandbox "${best[sandbox]}" "${cpu[sandbox]}"
echo "sandbox overhead: ${overhead} %"
if awk "BEGIN{exit !($overhead <= 3)}"; then echo "met    overhead ≤ 3 % (${overhead} %)"; else echo "MISSED overhead ≤ 3 % (${overhead} %)"; fi
