# Sourced by the benchmarks: `linux_tree` prints the directory holding the Linux 6.12 source
# (Debian's linux-source-6.12), extracting it once into $KILN_BENCH_DIR (default
# ~/.cache/kiln-bench).
linux_tree() {
  local cache=${KILN_BENCH_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln-bench}
  local tarball=/usr/src/linux-source-6.12.tar.xz
  if [ ! -e "$cache/.extracted" ]; then
    [ -e "$tarball" ] || { echo "bench: $tarball missing; run scripts/install-deps" >&2; return 1; }
    echo "bench: extracting $tarball into $cache (once)" >&2
    rm -rf "$cache/linux"
    mkdir -p "$cache/linux"
    tar -xf "$tarball" -C "$cache/linux" --strip-components=1
    touch "$cache/.extracted"
  fi
  echo "$cache/linux"
}
