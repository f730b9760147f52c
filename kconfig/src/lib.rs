//! Linux kernel configuration: the `.config` model and the Kconfig language.
//!
//! Owns: parsing and writing `.config` files in the kernel's exact format; fragments and their
//! merge (`merge_config.sh` semantics); checking that requested values survived; symbol-level
//! diffs; parsing the Kconfig tree of a kernel source and evaluating it with the kernel's own
//! semantics (`olddefconfig`, `explain`).
//!
//! Must not: run `make` or build anything (the builder does, in its sandbox), read a running
//! system's `/proc/config.gz` or `/boot`, or print. It takes a source tree path and returns
//! typed results and errors that name the file, line and symbol.
