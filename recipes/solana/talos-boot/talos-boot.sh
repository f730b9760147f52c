# What Talos v1.10.3 does at boot, in busybox sh, each step after the upstream function it
# follows: the boot checks of recipes/solana (qemu-check/init) and recipes/smoke
# (talos/smoke-checks) source this file.

# machine.kernel.modules as Talos v1.10.3 loads them: KernelModuleSpecController
# (internal/app/machined/pkg/controllers/runtime/kernel_module_spec.go) calls Load of
# github.com/pmorjan/kmod v1.1.1 (kmod_linux.go), which this follows: New() needs
# /lib/modules/$(uname -r)/modules.dep; Load() cleans the name ('-' to '_'), looks it up in
# modules.alias and in modules.builtin (each must exist: a missing one fails the load), takes its
# line of modules.dep, loads the dependencies last first ignoring errors, then the module (one
# already loaded is fine). Prints why when it fails.
kmod_load() {
  dir=/lib/modules/$(uname -r)
  [ -e "$dir/modules.dep" ] || { echo "error initializing kmod manager: stat $dir/modules.dep: no such file"; return 1; }
  name=$(echo "$1" | tr - _)
  [ -r "$dir/modules.alias" ] || { echo "get alias $name failed: open $dir/modules.alias: no such file"; return 1; }
  real=$(awk -v n="$name" '!/^#/ && NF >= 3 { a = $2; gsub("-", "_", a); if (a == n) { print $3; exit } }' "$dir/modules.alias")
  [ -n "$real" ] && name=$real
  [ -r "$dir/modules.builtin" ] || { echo "check builtin $name failed: open $dir/modules.builtin: no such file"; return 1; }
  # pathToName: the base name without every extension, cleaned.
  to_name='function to_name(p) { sub(".*/", "", p); sub("[.].*", "", p); gsub("-", "_", p); return p }'
  awk -v n="$name" "$to_name"' to_name($0) == n { found = 1; exit } END { exit !found }' "$dir/modules.builtin" && return 0
  deps=$(awk -v n="$name" "$to_name"' { f = $1; sub(":$", "", f); if (to_name(f) == n) { $1 = f; print; exit } }' "$dir/modules.dep")
  [ -n "$deps" ] || { echo "module not found"; return 1; }
  set -- $deps
  target=$1
  shift
  for dep in $(echo "$@" | tr ' ' '\n' | sed '1!G;h;$!d'); do
    loaded "$dep" || insmod "$dir/$dep" 2>/dev/null
  done
  loaded "$target" || insmod "$dir/$target" 2>&1 || { echo "load $name failed"; return 1; }
}
loaded() {
  m=$(basename "$1" | sed 's/[.].*//' | tr - _)
  grep -q "^$m " /proc/modules
}

# Writes one sysctl (KEY=VALUE) as Talos's kernel.WriteParam does (dots to slashes under
# /proc/sys); fails when the kernel has no such file.
write_sysctl() {
  path=/proc/sys/$(echo "${1%%=*}" | tr . /)
  [ -e "$path" ] && echo "${1#*=}" >"$path"
}
# The first value of a kernel argument, as go-procfs's ProcCmdline().Get(KEY).First() gives it
# ("slab_nomerge" and "slab_nomerge=" both give ""); fails when the argument is absent.
first_argument() {
  tr ' ' '\n' </proc/cmdline | awk -v k="$1" '
    { i = index($0, "="); key = i ? substr($0, 1, i - 1) : $0
      if (key == k) { print i ? substr($0, i + 1) : ""; found = 1; exit } }
    END { exit !found }'
}

# Talos v1.10.3 machined's first task, EnforceKSPPRequirements
# (internal/app/machined/pkg/runtime/v1alpha1/v1alpha1_sequencer_tasks.go): it waits until
# KernelParamSpecController has written every KSPP sysctl (pkg/kernel/kspp/kspp.go,
# GetKernelParams) — one whose file the kernel lacks is never written, and the boot waits for
# ever — then EnforceKSPPKernelParameters: the first slab_nomerge must be bare and the first pti
# must be "on", or the boot fails. Prints each failure after "; ", nothing when all hold.
kspp_failures() {
  for setting in kernel.kptr_restrict=1 kernel.dmesg_restrict=1 kernel.perf_event_paranoid=3 \
    kernel.yama.ptrace_scope=1 user.max_user_namespaces=0 kernel.unprivileged_bpf_disabled=1 \
    net.core.bpf_jit_harden=2; do
    write_sysctl "$setting" || printf '; %s cannot be written (no such file): the boot waits for ever' "${setting%%=*}"
  done
  for required in slab_nomerge= pti=on; do
    key=${required%%=*}
    want=${required#*=}
    if ! value=$(first_argument "$key"); then
      printf '; KSPP kernel parameter %s is required' "$key"
    elif [ "$value" != "$want" ]; then
      printf '; KSPP kernel parameter %s was found with value %s, expected %s' "$key" "$value" "$want"
    fi
  done
}
