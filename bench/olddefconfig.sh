#!/usr/bin/env bash
# Benchmark: `kiln kconfig olddefconfig` against the kernel's own `make olddefconfig` and the bare
# `scripts/kconfig/conf --olddefconfig Kconfig` make runs, in the same run.
#
#   bench/olddefconfig.sh
#
# Input: Debian's 6.12 amd64 config (linux-config-6.12) on the Linux 6.12 tree (Debian's
# linux-source-6.12), out of tree, with `conf` already built. Each way runs KILN_BENCH_RUNS
# times (default 5), alternating; the best wall time is kept with its CPU time. Every output is
# checked to be byte-identical to make's.
#
# | row | command |
# |---|---|
# | make | `make -s O=OBJ olddefconfig` |
# | conf | `scripts/kconfig/conf --olddefconfig Kconfig` with the variables make exports |
# | kiln | `kiln kconfig olddefconfig --srctree TREE CONFIG` (runs the $(shell,…) probes) |
# | kiln-replay | the same with `--probes RECORD` (probes answered from a record) |
#
# Target: kiln ≤ 0.5× make's wall time.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
runs=${KILN_BENCH_RUNS:-5}
debian=/usr/src/linux-config-6.12/config.amd64_none_amd64.xz
for tool in make gcc flex bison xz /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench: $tool missing; run scripts/install-deps" >&2; exit 1; }
done
[ -e "$debian" ] || { echo "bench: $debian missing; run scripts/install-deps" >&2; exit 1; }

cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml" --bin kiln
kiln=$root/target/release/kiln

# shellcheck source=bench/linux-tree.sh
. "$root/bench/linux-tree.sh"
tree=$(linux_tree)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
xz -dc "$debian" >"$work/input.config"
mkdir -p "$work/obj"
cp "$work/input.config" "$work/obj/.config"
make -s -C "$tree" O="$work/obj" olddefconfig >/dev/null 2>&1
cp "$work/obj/.config" "$work/expected.config"
"$kiln" kconfig olddefconfig --srctree "$tree" --record-probes "$work/probes.json" "$work/input.config" \
  --out "$work/kiln.config" 2>/dev/null
cmp -s "$work/expected.config" "$work/kiln.config" || { echo "bench: kiln's output differs from make's" >&2; exit 1; }

# What make exports to conf (the Kconfig environment of this host).
version=$(make -s -C "$tree" kernelversion 2>/dev/null)
conf_env=(env -i PATH="$PATH" HOME="$HOME" srctree="$tree" ARCH=x86 SRCARCH=x86 KERNELVERSION="$version"
  CC=gcc LD=ld AR=ar NM=nm OBJCOPY=objcopy PAHOLE=pahole RUSTC=rustc BINDGEN=bindgen PYTHON3=python3
  CC_VERSION_TEXT="$(LC_ALL=C gcc --version 2>/dev/null | head -n 1)"
  RUSTC_VERSION_TEXT="$(rustc --version 2>/dev/null || true)")

declare -A best cpu
for ((run = 0; run < runs; run++)); do
  for way in make conf kiln kiln-replay; do
    cp "$work/input.config" "$work/obj/.config"
    case $way in
      make) command=(make -s -C "$tree" O="$work/obj" olddefconfig) ;;
      conf) command=("${conf_env[@]}" sh -c "cd '$work/obj' && exec scripts/kconfig/conf -s --olddefconfig Kconfig") ;;
      kiln) command=("$kiln" kconfig olddefconfig --srctree "$tree" "$work/obj/.config") ;;
      kiln-replay) command=("$kiln" kconfig olddefconfig --srctree "$tree" --probes "$work/probes.json" "$work/obj/.config") ;;
    esac
    /usr/bin/time -f '%e %U %S' -o "$work/time" "${command[@]}" </dev/null >/dev/null 2>"$work/log" \
      || { cat "$work/log" >&2; exit 1; }
    cmp -s "$work/expected.config" "$work/obj/.config" || { echo "bench: $way's output differs" >&2; exit 1; }
    read -r seconds user system <"$work/time"
    seconds_cpu=$(awk -v u="$user" -v s="$system" 'BEGIN{print u+s}')
    echo "bench: $way run $((run + 1)): ${seconds} s wall, ${seconds_cpu} s CPU" >&2
    if [ -z "${best[$way]:-}" ] || awk "BEGIN{exit !($seconds < ${best[$way]})}"; then
      best[$way]=$seconds
      cpu[$way]=$seconds_cpu
    fi
  done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
echo
echo "Debian 6.12 amd64 config, olddefconfig on Linux 6.12, $(nproc) cores, best of $runs"
printf '%-12s %8s %8s %10s %10s\n' way "wall s" "CPU s" "vs make" "vs conf"
for way in make conf kiln kiln-replay; do
  printf '%-12s %8s %8s %10s %10s\n' "$way" "${best[$way]}" "${cpu[$way]}" \
    "$(ratio "${best[$way]}" "${best[make]}")×" "$(ratio "${best[$way]}" "${best[conf]}")×"
done
verdict=met
awk "BEGIN{exit !(${best[kiln]} <= 0.5 * ${best[make]})}" || verdict=MISSED
echo "target kiln ≤ 0.5× make wall: $(ratio "${best[kiln]}" "${best[make]}")× — $verdict"
