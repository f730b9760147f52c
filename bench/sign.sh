#!/usr/bin/env bash
# Benchmark: `kiln modules sign` against the kernel's scripts/sign-file, on the same modules with
# the same key, in the same run.
#
#   bench/sign.sh [--quick]
#
# Modules: every module under kernel/drivers/net of Debian's 6.12 amd64 kernel package
# (/var/cache/kiln-fixtures/linux-image-6.12-amd64.deb, ~470 modules, ~90 MB uncompressed),
# decompressed and with Debian's signature stripped, prepared once in $KILN_BENCH_DIR (default
# ~/.cache/kiln-bench); --quick (or KILN_BENCH_QUICK=1) takes the first 100.
# Key: RSA-4096 and SHA-512, made by openssl from the kernel's certs/default_x509.genkey as
# the kernel's build makes it.
# Peers: sign-file built from the Linux 6.12 source, one process per module as the kernel's
# `make modules_install` runs it, $(nproc) at a time (as `make -j$(nproc)` would); kiln signs
# them all in one process, in parallel. Each runs $KILN_BENCH_RUNS times (default 3) on fresh
# copies; the best wall time is kept, with the CPU time (user + system, children included) of
# that run, which a busy machine does not move. The outputs are checked to be byte-identical.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
quick=${KILN_BENCH_QUICK:-0}
[ "${1:-}" = "--quick" ] && quick=1
runs=${KILN_BENCH_RUNS:-3}
deb=/var/cache/kiln-fixtures/linux-image-6.12-amd64.deb
for tool in /usr/bin/time gcc openssl dpkg-deb xz xargs; do
  command -v "$tool" >/dev/null || { echo "bench: $tool missing; run scripts/install-deps" >&2; exit 1; }
done
[ -e "$deb" ] || { echo "bench: $deb missing; run scripts/install-deps" >&2; exit 1; }

cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml" --bin kiln
kiln=$root/target/release/kiln

# shellcheck source=bench/linux-tree.sh
. "$root/bench/linux-tree.sh"
tree=$(linux_tree)
cache=${KILN_BENCH_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln-bench}
modules=$cache/unsigned-modules
if [ ! -e "$modules/.done" ]; then
  echo "bench: preparing unsigned modules in $modules (once)" >&2
  rm -rf "$modules" "$cache/deb"
  mkdir -p "$modules" "$cache/deb"
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$cache/deb" --wildcards '*/kernel/drivers/net/*.ko.xz'
  find "$cache/deb" -name '*.ko.xz' | sort | while read -r xz; do
    ko=$modules/$(basename "${xz%.xz}")
    xz -dc "$xz" >"$ko.signed"
    # Strip the signature: the 4-byte big-endian sig_len ends the 12-byte header before the
    # 28-byte marker.
    size=$(stat -c %s "$ko.signed")
    sig_len=$(tail -c 32 "$ko.signed" | head -c 4 | od -An -tu1 | awk '{print $1*16777216+$2*65536+$3*256+$4}')
    head -c $((size - 40 - sig_len)) "$ko.signed" >"$ko"
    rm "$ko.signed"
  done
  rm -rf "$cache/deb"
  touch "$modules/.done"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/bin"
gcc -O2 -o "$work/bin/sign-file" "$tree/scripts/sign-file.c" -lcrypto
openssl req -new -nodes -utf8 -sha512 -days 36500 -batch -x509 -config "$tree/certs/default_x509.genkey" \
  -outform PEM -out "$work/cert.pem" -keyout "$work/key.pem" 2>/dev/null

mapfile -t set < <(find "$modules" -name '*.ko' | sort)
[ "$quick" = 1 ] && set=("${set[@]:0:100}")
count=${#set[@]}
bytes=$(cat "${set[@]}" | wc -c)

declare -A best cpu
for ((run = 0; run < runs; run++)); do
  for tool in kiln sign-file; do
    rm -rf "${work:?}/$tool"
    mkdir "$work/$tool"
    cp "${set[@]}" "$work/$tool/"
    sync
    if [ "$tool" = kiln ]; then
      /usr/bin/time -f '%e %U %S' -o "$work/time" "$kiln" modules sign --key "$work/key.pem" --cert "$work/cert.pem" \
        "$work/kiln"/*.ko 2>/dev/null
    else
      /usr/bin/time -f '%e %U %S' -o "$work/time" sh -c 'find "$1" -name "*.ko" -print0 |
        xargs -0 -n1 -P "$(nproc)" "$2" sha512 "$3" "$4"' sh "$work/sign-file" "$work/bin/sign-file" \
        "$work/key.pem" "$work/cert.pem"
    fi
    read -r seconds user system <"$work/time"
    used=$(awk -v u="$user" -v s="$system" 'BEGIN{print u+s}')
    echo "bench: $tool run $((run + 1)): ${seconds} s wall, ${used} s CPU" >&2
    if [ -z "${best[$tool]:-}" ] || awk "BEGIN{exit !($seconds < ${best[$tool]})}"; then
      best[$tool]=$seconds
      cpu[$tool]=$used
    fi
  done
  for ko in "$work/kiln"/*.ko; do
    cmp -s "$ko" "$work/sign-file/$(basename "$ko")" || { echo "bench: $(basename "$ko") differs" >&2; exit 1; }
  done
done

echo
echo "$count modules from kernel/drivers/net, $((bytes / 1000000)) MB, RSA-4096 SHA-512, $(nproc) cores, best of $runs"
printf '%-10s %8s %10s %8s %8s\n' tool "wall s" "modules/s" "MB/s" "CPU s"
for tool in kiln sign-file; do
  awk -v t="$tool" -v s="${best[$tool]}" -v n="$count" -v b="$bytes" -v c="${cpu[$tool]}" \
    'BEGIN{printf "%-10s %8.2f %10.1f %8.1f %8.2f\n", t, s, n/s, b/s/1e6, c}'
done
ratio() { awk -v k="$1" -v s="$2" 'BEGIN{printf "%.2f", s/k}'; }
echo "outputs byte-identical; kiln/sign-file throughput: $(ratio "${best[kiln]}" "${best[sign-file]}")× by wall time, $(ratio "${cpu[kiln]}" "${cpu[sign-file]}")× by CPU time"
