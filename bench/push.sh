#!/usr/bin/env bash
# Benchmark: `kiln push` against `skopeo copy oci:… docker://…`, same image, same run.
#
#   bench/push.sh
#
# Image: a multi-layer image (KILN_BENCH_LAYERS layers, default 5, of KILN_BENCH_LAYER_MB MB
# each, default 120: 600 MB) of incompressible deterministic data, gzip layers packed by kiln and
# composed into one manifest. Each tool pushes it to its own fresh Debian `docker-registry` on
# loopback (filesystem storage under a temp dir), KILN_BENCH_RUNS times (default 3); the best
# wall time is kept. Then each pushes again to the registry that has everything (a no-op push).
# Targets (2 cores): kiln ≥ 1.2× skopeo's throughput; a no-op re-push under 0.1 s.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
for tool in skopeo docker-registry python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool missing; run scripts/install-deps" >&2; exit 1; }
done
layers=${KILN_BENCH_LAYERS:-5}
layer_mb=${KILN_BENCH_LAYER_MB:-120}
runs=${KILN_BENCH_RUNS:-3}

cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml" --bin kiln
kiln=$root/target/release/kiln

work=$(mktemp -d)
registry_pid=
cleanup() {
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null && wait "$registry_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
export SOURCE_DATE_EPOCH=0

echo "bench: making a ${layers}-layer image of $((layers * layer_mb)) MB" >&2
layout=$work/layout
for ((i = 0; i < layers; i++)); do
  mkdir -p "$work/tree$i"
  python3 -c 'import random,sys; sys.stdout.buffer.write(random.Random(int(sys.argv[1])).randbytes(int(sys.argv[2]) * 10**6))' \
    "$i" "$layer_mb" >"$work/tree$i/data"
  "$kiln" pack "$work/tree$i" --ref "layer$i:v1" --out "$layout" >/dev/null
  rm -rf "$work/tree$i"
done
# One manifest over every layer, with a config listing their diff_ids.
python3 - "$layout" "$layers" <<'EOF'
import hashlib, json, os, sys
layout, count = sys.argv[1], int(sys.argv[2])
index = json.load(open(f"{layout}/index.json"))
def blob(descriptor):
    return json.load(open(f"{layout}/blobs/sha256/{descriptor['digest'].split(':')[1]}"))
def write(data, media_type):
    digest = hashlib.sha256(data).hexdigest()
    open(f"{layout}/blobs/sha256/{digest}", "wb").write(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}
def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
by_name = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in index["manifests"]}
manifests = [blob(by_name[f"layer{i}:v1"]) for i in range(count)]
diff_ids = [blob(m["config"])["rootfs"]["diff_ids"][0] for m in manifests]
config = {"architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
          "rootfs": {"type": "layers", "diff_ids": diff_ids}, "config": {}}
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": write(canonical(config), "application/vnd.oci.image.config.v1+json"),
            "layers": [m["layers"][0] for m in manifests]}
descriptor = write(canonical(manifest), manifest["mediaType"])
descriptor["annotations"] = {"org.opencontainers.image.ref.name": "multi:v1"}
index["manifests"].append(descriptor)
open(f"{layout}/index.json.tmp", "w").write(json.dumps(index, sort_keys=True, separators=(",", ":")))
os.rename(f"{layout}/index.json.tmp", f"{layout}/index.json")
EOF
image_bytes=$(python3 -c '
import json,sys
layout = sys.argv[1]
index = json.load(open(layout + "/index.json"))
top = [m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == "multi:v1"][0]
manifest = json.load(open(layout + "/blobs/sha256/" + top["digest"].split(":")[1]))
print(sum(l["size"] for l in manifest["layers"]) + manifest["config"]["size"])' "$layout")

# start_registry: a fresh registry with empty storage on a free loopback port; sets $address.
start_registry() {
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null && wait "$registry_pid" 2>/dev/null || true
  local dir port
  dir=$(mktemp -d -p "$work")
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  address=127.0.0.1:$port
  printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' \
    "$dir/data" "$address" >"$dir/config.yml"
  docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
  registry_pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench: docker-registry did not start; $(cat "$dir/log")" >&2
  exit 1
}

# timed NAME COMMAND…: wall seconds of COMMAND into $seconds; keeps the best in best[NAME].
declare -A best
timed() {
  local name=$1; shift
  local start end
  start=$(date +%s%N)
  "$@" >/dev/null
  end=$(date +%s%N)
  seconds=$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.3f", (b-a)/1e9}')
  if [ -z "${best[$name]:-}" ] || awk "BEGIN{exit !($seconds < ${best[$name]})}"; then best[$name]=$seconds; fi
}

kiln_push() { "$kiln" push "$layout" --image multi:v1 --to "$address/bench" --insecure-http; }
skopeo_copy() {
  skopeo copy --quiet --dest-tls-verify=false "oci:$layout:multi:v1" "docker://$address/bench/multi:v1"
}

echo "bench: warming the page cache" >&2
cat "$layout"/blobs/sha256/* >/dev/null
for ((run = 0; run < runs; run++)); do
  start_registry
  timed kiln kiln_push
  timed kiln-noop kiln_push
  start_registry
  timed skopeo skopeo_copy
  timed skopeo-noop skopeo_copy
done
# Both pushed the same manifest bytes: skopeo kept the layers as they are.
kiln_digest=$(kiln_push | sed 's/.*@//')
skopeo_digest=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$address/bench/multi:v1")

echo
echo "image: $layers gzip layers, $(awk -v b="$image_bytes" 'BEGIN{printf "%.0f", b/1e6}') MB; $(nproc) cores; best of $runs"
printf '%-12s %8s %9s\n' push "wall s" "MB/s"
for name in kiln skopeo; do
  awk -v n="$name" -v w="${best[$name]}" -v b="$image_bytes" 'BEGIN{printf "%-12s %8.3f %9.1f\n", n, w, b/w/1e6}'
done
for name in kiln-noop skopeo-noop; do
  printf '%-12s %8.3f %9s\n' "$name" "${best[$name]}" -
done
echo "manifest digest: kiln $kiln_digest, skopeo $skopeo_digest"
echo

ratio=$(awk -v a="${best[skopeo]}" -v b="${best[kiln]}" 'BEGIN{printf "%.2f", a/b}')
check() { if awk "BEGIN{exit !($2)}"; then echo "met    $1"; else echo "MISSED $1"; fi; }
echo "kiln push vs skopeo copy: ${ratio}x   no-op: kiln ${best[kiln-noop]} s, skopeo ${best[skopeo-noop]} s"
check "kiln ≥ 1.2× skopeo's throughput (${ratio}x)" "$ratio >= 1.2"
check "no-op re-push < 0.1 s (${best[kiln-noop]} s)" "${best[kiln-noop]} < 0.1"
check "same manifest digest from both tools" "\"$kiln_digest\" == \"$skopeo_digest\""
