//! `depmod`: the dependency, alias and symbol indexes of a module tree, as kmod 30 writes them.
//!
//! The module directory is `BASEDIR/lib/modules/KVER`, as `depmod -b BASEDIR KVER` uses;
//! when that does not exist but `BASEDIR/usr/lib/modules/KVER` does (a merged-/usr tree
//! without the `/lib` link, as Talos uses), that one is used. [`Options::moduledir`] names
//! another directory explicitly.
//!
//! Output, byte for byte as kmod 30's depmod writes it: `modules.dep`, `modules.alias`,
//! `modules.softdep`, `modules.symbols`, `modules.devname`, and the binary indexes
//! `modules.dep.bin`, `modules.alias.bin`, `modules.symbols.bin`, `modules.builtin.bin`,
//! `modules.builtin.alias.bin` (kmod ≤ 33 post-order trie layout). `modules.builtin` and
//! `modules.builtin.modinfo` are inputs, written by the kernel build; kmod 30 writes no
//! `modules.weakdep` (kmod 33 added it), so neither does this.
//!
//! Order. Modules are ordered as kmod orders them: those listed in `modules.order` in its
//! order, then the others in the iteration order of kmod's name hash table (reproduced in
//! `kmodhash.rs`), so every output is fully determined by the tree — except which of two
//! equally ranked files of the same module name wins, which in kmod depends on directory
//! order; here the tree is walked depth first with each directory's entries in byte order (then
//! the external directories), and the first file found is kept.
//!
//! Differences from kmod 30, on purpose: no configuration is read unless given (kmod reads
//! the host's `/etc/depmod.d`); `external` directories are looked up under the base
//! directory and written as absolute paths inside it; `.ko.gz` modules are read (Debian's kmod
//! is built without zlib and ignores them).

pub mod config;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::index::Index;
use crate::kmodhash;
use crate::module::{self, Module};
use crate::symvers::Symvers;
pub use config::{Config, Search};

/// What to index.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The root of the tree (`depmod -b`).
    pub basedir: PathBuf,
    /// The kernel release (`KVER`).
    pub release: String,
    /// The modules directory inside `basedir`, e.g. `/usr/lib/modules`; `None` looks in
    /// `/lib/modules`, then `/usr/lib/modules`.
    pub moduledir: Option<PathBuf>,
    /// depmod.d files or directories (`depmod -C`); none means the default configuration.
    pub config: Vec<PathBuf>,
    /// A `Module.symvers` of the kernel, to report unknown symbols and CRC disagreements
    /// (`depmod -e -E`).
    pub symvers: Option<PathBuf>,
    /// Follow symbolic links in the tree, as kmod does. A tree that untrusted code made is
    /// indexed without: a link, wherever it points, is not a module, and the module
    /// directory's own files (`modules.order`, `modules.builtin`, …) must be files.
    pub follow_links: bool,
}

/// The result of indexing a tree, before anything is written.
#[derive(Debug)]
pub struct Output {
    /// The module directory indexed.
    pub module_dir: PathBuf,
    /// Modules indexed, in depmod order, as written in `modules.dep`.
    pub modules: Vec<String>,
    /// Every output file, in the order kmod writes them.
    pub files: Vec<(&'static str, Vec<u8>)>,
    /// Problems kmod would print and carry on past (unreadable modules, bad config lines,
    /// unknown symbols with a symvers file).
    pub warnings: Vec<String>,
}

/// Indexes the tree and writes every output file into the module directory, each by an
/// atomic rename (all temporary files are complete before the first rename).
pub fn depmod(options: &Options) -> Result<Output> {
    let output = compute(options)?;
    write_files(&output.module_dir, &output.files)?;
    Ok(output)
}

/// Writes `files` into `dir`, all complete under temporary names, then renamed into place.
pub fn write_files(dir: &Path, files: &[(&'static str, Vec<u8>)]) -> Result<()> {
    let mut staged = Vec::new();
    for (name, bytes) in files {
        let path = dir.join(name);
        let write_error = |source| Error::Write { path: path.clone(), source };
        let mut temp =
            tempfile::Builder::new().prefix(&format!(".{name}.")).tempfile_in(dir).map_err(write_error)?;
        // Set, not requested at creation: the process's umask must not decide the files' modes
        // (they end up in images and initramfs archives).
        temp.as_file()
            .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .map_err(write_error)?;
        temp.write_all(bytes).map_err(write_error)?;
        staged.push((temp, path));
    }
    for (temp, path) in staged {
        temp.persist(&path).map_err(|e| Error::Write { path, source: e.error })?;
    }
    Ok(())
}

/// Finds the module directory for the options.
pub fn module_dir(options: &Options) -> Result<PathBuf> {
    let under =
        |dir: &Path| options.basedir.join(dir.strip_prefix("/").unwrap_or(dir)).join(&options.release);
    let dir = match &options.moduledir {
        Some(dir) => under(dir),
        None => {
            let lib = under(Path::new("/lib/modules"));
            let usr = under(Path::new("/usr/lib/modules"));
            if !lib.is_dir() && usr.is_dir() { usr } else { lib }
        }
    };
    if !dir.is_dir() {
        return Err(Error::NoModuleDirectory { path: dir });
    }
    Ok(dir)
}

/// A module file found in the tree.
#[derive(Debug)]
struct Found {
    /// Host path.
    path: String,
    /// Path relative to the module directory, when inside it.
    relpath: Option<String>,
    /// The module name.
    name: String,
}

impl Found {
    /// The path written into the indexes: relative inside the module directory, otherwise
    /// absolute inside the base directory.
    fn index_path<'a>(&'a self, basedir: &str) -> std::borrow::Cow<'a, str> {
        match &self.relpath {
            Some(relpath) => relpath.into(),
            None => match self.path.strip_prefix(basedir.trim_end_matches('/')) {
                Some(inside) if inside.starts_with('/') => inside.into(),
                _ => self.path.as_str().into(),
            },
        }
    }

    /// kmod's `uncrelpath`: the relative path cut after `<dir>/<basename prefix>.ko`.
    fn uncompressed_relpath(&self) -> Option<String> {
        let relpath = self.relpath.as_ref()?;
        let dir_len = relpath.rfind('/').map_or(0, |slash| slash + 1);
        let len = dir_len + self.name.len() + 3;
        Some(
            relpath
                .as_bytes()
                .get(..len)
                .map_or(relpath.clone(), |b| String::from_utf8_lossy(b).into_owned()),
        )
    }
}

struct Walker<'a> {
    config: &'a Config,
    follow_links: bool,
    dirname: String,
    /// The external directories inside the base directory, in kmod's list order (last first).
    externals: Vec<String>,
    found: HashMap<String, Found>,
}

impl Walker<'_> {
    fn walk(&mut self, dir: &Path) -> Result<()> {
        let entries =
            std::fs::read_dir(dir).map_err(|source| Error::Read { path: dir.to_owned(), source })?;
        let mut entries: Vec<_> = entries
            .collect::<std::io::Result<_>>()
            .map_err(|source| Error::Read { path: dir.to_owned(), source })?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "build" || name == "source" || self.config.excludes.contains(&name) {
                continue;
            }
            let path = entry.path();
            // As kmod: the directory entry's type, following symbolic links (when asked).
            let (is_dir, is_file) = match entry.file_type() {
                Ok(kind) if !kind.is_symlink() => (kind.is_dir(), kind.is_file()),
                Ok(_) if !self.follow_links => continue,
                _ => match std::fs::metadata(&path) {
                    Ok(meta) => (meta.is_dir(), meta.is_file()),
                    Err(_) => continue,
                },
            };
            if is_dir {
                self.walk(&path)?;
            } else if is_file && module::has_module_extension(&name) {
                self.consider(path.to_string_lossy().into_owned());
            }
        }
        Ok(())
    }

    fn consider(&mut self, path: String) {
        let name = module::module_name(Path::new(&path));
        if let Some(old) = self.found.get(&name)
            && self.old_wins(&old.path, &path, name.len())
        {
            return;
        }
        let relpath =
            path.strip_prefix(&self.dirname).and_then(|rest| rest.strip_prefix('/')).map(str::to_owned);
        self.found.insert(name.clone(), Found { path, relpath, name });
    }

    /// kmod's `depmod_module_is_higher_priority`, on byte strings.
    fn old_wins(&self, old: &str, new: &str, name_len: usize) -> bool {
        let cut = |path: &str| -> String {
            let base = path.rfind('/').map_or(0, |slash| slash + 1);
            path.get(..base + name_len).unwrap_or(path).to_owned()
        };
        let (old_cut, new_cut) = (cut(old), cut(new));
        let relative = |path: &str| -> Option<String> {
            path.starts_with(&self.dirname)
                .then(|| path.get(self.dirname.len() + 1..).unwrap_or("").to_owned())
        };
        let (rel_old, rel_new) = (relative(&old_cut), relative(&new_cut));
        for override_path in self.config.overrides.iter().rev() {
            if rel_new.as_deref() == Some(override_path.as_str()) {
                return false;
            }
            if rel_old.as_deref() == Some(override_path.as_str()) {
                return true;
            }
        }
        let under = |path: &str, prefix: &str| {
            path.len() > prefix.len() && path.as_bytes()[prefix.len()] == b'/' && path.starts_with(prefix)
        };
        let (mut builtin, mut old_priority, mut new_priority) = (-1i64, -1i64, -1i64);
        let mut i = 0i64;
        for search in self.config.search.iter().rev() {
            match search {
                Search::BuiltIn => builtin = i,
                Search::External => {
                    for external in &self.externals {
                        if under(&new_cut, external) {
                            new_priority = i;
                        }
                        if under(&old_cut, external) {
                            old_priority = i;
                        }
                        i += 1;
                    }
                }
                Search::Path(dir) => {
                    if rel_new.as_deref().is_some_and(|rel| under(rel, dir)) {
                        new_priority = i;
                    } else if rel_old.as_deref().is_some_and(|rel| under(rel, dir)) {
                        old_priority = i;
                    }
                }
            }
            i += 1;
        }
        if new_priority < 0 {
            new_priority = builtin;
        }
        if old_priority < 0 {
            old_priority = builtin;
        }
        new_priority <= old_priority
    }
}

/// One module in depmod's array.
struct Entry {
    found: Found,
    /// Direct dependencies, by array index, in discovery order.
    deps: Vec<usize>,
    users: usize,
    dep_sort: usize,
}

/// Indexes the tree in memory.
pub fn compute(options: &Options) -> Result<Output> {
    let module_dir = module_dir(options)?;
    let config = if options.config.is_empty() {
        Config::empty()
    } else {
        Config::load(&options.config, &options.release)?
    };
    let mut warnings = config.warnings.clone();
    let dirname = module_dir.to_string_lossy().into_owned();
    let basedir = options.basedir.to_string_lossy().into_owned();
    let externals: Vec<PathBuf> =
        config.externals.iter().rev().map(|dir| options.basedir.join(dir.trim_start_matches('/'))).collect();
    let mut walker = Walker {
        config: &config,
        follow_links: options.follow_links,
        dirname: dirname.clone(),
        externals: externals
            .iter()
            .map(|dir| dir.to_string_lossy().trim_end_matches('/').to_owned())
            .collect(),
        found: HashMap::new(),
    };
    walker.walk(&module_dir)?;
    for dir in &externals {
        if dir.is_dir() {
            walker.walk(dir)?;
        }
    }

    // The array: kmod's name-hash order, then modules.order entries first, in its order.
    let mut found: Vec<Found> = walker.found.into_values().collect();
    kmodhash::sort_in_hash_order(&mut found, 512, |f| f.name.as_bytes());
    if let Some(order) = read_optional(&module_dir.join("modules.order"), options.follow_links)? {
        if order.is_empty() || order.ends_with(b"\n") {
            let by_path: HashMap<String, usize> =
                found.iter().enumerate().filter_map(|(i, f)| Some((f.uncompressed_relpath()?, i))).collect();
            let lines: Vec<&[u8]> = order.split(|&b| b == b'\n').collect();
            let total = lines.len() as i64; // lines + 1, as kmod counts
            let mut sort_index = vec![1i64; found.len()];
            for (number, line) in lines.iter().enumerate() {
                if let Some(&i) = by_path.get(String::from_utf8_lossy(line).as_ref()) {
                    sort_index[i] = number as i64 + 1 - total;
                }
            }
            let mut keyed: Vec<(i64, Found)> = sort_index.into_iter().zip(found).collect();
            keyed.sort_by_key(|(key, _)| *key);
            found = keyed.into_iter().map(|(_, f)| f).collect();
        } else {
            warnings.push(format!(
                "{}: corrupted: last line misses '\\n'",
                module_dir.join("modules.order").display()
            ));
        }
    }

    // Read every module, in parallel.
    // Largest files first, so that no core is left alone with a big module at the end.
    let sizes: Vec<u64> =
        found.par_iter().map(|f| std::fs::metadata(&f.path).map_or(0, |meta| meta.len())).collect();
    let mut order: Vec<usize> = (0..found.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(sizes[i]));
    let mut read: Vec<(usize, Result<Module>)> =
        order.par_iter().map(|&i| (i, Module::read(Path::new(&found[i].path)))).collect();
    read.sort_by_key(|(i, _)| *i);
    let mut modules: Vec<Option<Module>> = Vec::with_capacity(read.len());
    for (_, module) in read {
        match module {
            Ok(module) => modules.push(Some(module)),
            Err(error) => {
                warnings.push(format!("{}", ErrorChain(&error)));
                modules.push(None);
            }
        }
    }
    let mut entries: Vec<Entry> = found
        .into_iter()
        .map(|found| Entry { found, deps: Vec::new(), users: 0, dep_sort: usize::MAX })
        .collect();

    // Symbols: the kernel's (from Module.symvers), then each module's in array order; a later
    // owner replaces an earlier one.
    let symvers = options.symvers.as_deref().map(Symvers::read).transpose()?;
    let mut symbols: HashMap<&str, (Option<usize>, Option<u64>)> = HashMap::new();
    if let Some(symvers) = &symvers {
        for symbol in symvers.symbols.iter().filter(|s| s.module == "vmlinux") {
            symbols.insert(&symbol.name, (None, Some(symbol.crc)));
        }
        for fake in ["__this_module", "_GLOBAL_OFFSET_TABLE_", "TOC."] {
            symbols.entry(fake).or_insert((None, None));
        }
    }
    for (i, module) in modules.iter().enumerate() {
        for export in module.iter().flat_map(|m| &m.exports) {
            symbols.insert(&export.symbol, (Some(i), export.crc));
        }
    }

    // Dependencies, in each module's needed-symbol order.
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); entries.len()];
    let mut users = vec![0usize; entries.len()];
    for (i, (entry, module)) in entries.iter().zip(&modules).enumerate() {
        let Some(module) = module else { continue };
        for needed in &module.needed {
            let name = needed.symbol.strip_prefix('.').unwrap_or(&needed.symbol);
            let Some(&(owner, crc)) = symbols.get(name) else {
                if symvers.is_some() && !needed.weak {
                    warnings.push(format!("{} needs unknown symbol {name}", entry.found.path));
                }
                continue;
            };
            if symvers.is_some() && !needed.weak && crc.unwrap_or(0) != needed.crc.unwrap_or(0) {
                warnings.push(format!("{} disagrees about version of symbol {name}", entry.found.path));
            }
            if let Some(owner) = owner
                && !deps[i].contains(&owner)
            {
                deps[i].push(owner);
                users[owner] += 1;
            }
        }
    }
    for (entry, (deps, users)) in entries.iter_mut().zip(deps.into_iter().zip(users)) {
        entry.deps = deps;
        entry.users = users;
    }
    topological_sort(&mut entries)?;
    for i in 0..entries.len() {
        let mut deps = std::mem::take(&mut entries[i].deps);
        deps.sort_by_key(|&d| entries[d].dep_sort);
        entries[i].deps = deps;
    }

    let files =
        outputs(&entries, &modules, &symbols, &module_dir, options.follow_links, &basedir, &mut warnings)?;
    let modules = entries.iter().map(|e| e.found.index_path(&basedir).into_owned()).collect();
    Ok(Output { module_dir, modules, files, warnings })
}

/// kmod's `depmod_calculate_dependencies`: Kahn's algorithm with a stack, modules without
/// users first.
fn topological_sort(entries: &mut [Entry]) -> Result<()> {
    let mut users: Vec<usize> = entries.iter().map(|e| e.users).collect();
    let mut roots: Vec<usize> = (0..entries.len()).filter(|&i| users[i] == 0).collect();
    let mut sorted = 0;
    while let Some(source) = roots.pop() {
        entries[source].dep_sort = sorted;
        sorted += 1;
        for &dep in &entries[source].deps {
            users[dep] -= 1;
            if users[dep] == 0 {
                roots.push(dep);
            }
        }
    }
    if sorted < entries.len() {
        let mut cyclic: Vec<String> =
            (0..entries.len()).filter(|&i| users[i] > 0).map(|i| entries[i].found.name.clone()).collect();
        cyclic.sort();
        return Err(Error::Cycle { modules: cyclic });
    }
    Ok(())
}

/// Every dependency of `i`, direct or not, each once, in dependency-sort order.
fn all_dependencies(entries: &[Entry], i: usize) -> Vec<usize> {
    let mut seen = vec![false; entries.len()];
    let mut all = Vec::new();
    let mut stack: Vec<usize> = entries[i].deps.iter().rev().copied().collect();
    while let Some(d) = stack.pop() {
        if std::mem::replace(&mut seen[d], true) {
            continue;
        }
        all.push(d);
        stack.extend(entries[d].deps.iter().rev());
    }
    all.sort_by_key(|&d| entries[d].dep_sort);
    all
}

fn read_optional(path: &Path, follow_links: bool) -> Result<Option<Vec<u8>>> {
    if !follow_links
        && let Ok(meta) = std::fs::symlink_metadata(path)
        && !meta.is_file()
    {
        return Err(Error::Read {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
        });
    }
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Read { path: path.to_owned(), source }),
    }
}

/// An error with its causes on one line.
struct ErrorChain<'a>(&'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

type Symbols<'a> = HashMap<&'a str, (Option<usize>, Option<u64>)>;

type Built = Result<(Vec<(&'static str, Vec<u8>)>, Vec<String>)>;

/// Every output file, in kmod's order, built in parallel (each file on its own is serial and
/// deterministic).
fn outputs(
    entries: &[Entry],
    modules: &[Option<Module>],
    symbols: &Symbols<'_>,
    module_dir: &Path,
    follow_links: bool,
    basedir: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<(&'static str, Vec<u8>)>> {
    let ((deps, aliases), (symbols, (builtin, devname))) = rayon::join(
        || rayon::join(|| dep_files(entries, basedir), || alias_files(entries, modules)),
        || {
            rayon::join(
                || symbol_files(entries, symbols),
                || rayon::join(|| builtin_files(module_dir, follow_links), || Ok(devnames(entries, modules))),
            )
        },
    );
    let mut files = Vec::new();
    for built in [deps, aliases, symbols, builtin, devname] {
        let (built, messages) = built?;
        files.extend(built);
        warnings.extend(messages);
    }
    Ok(files)
}

/// `modules.dep` and `modules.dep.bin`.
fn dep_files(entries: &[Entry], basedir: &str) -> Built {
    let path = |i: usize| entries[i].found.index_path(basedir);
    let mut dep = String::new();
    let mut dep_bin = Index::new("modules.dep.bin");
    for (i, entry) in entries.iter().enumerate() {
        let mut line = format!("{}:", path(i));
        for d in all_dependencies(entries, i) {
            line.push(' ');
            line.push_str(&path(d));
        }
        dep_bin.insert(entry.found.name.as_bytes(), line.as_bytes(), i as u32)?;
        dep.push_str(&line);
        dep.push('\n');
    }
    Ok((vec![("modules.dep", dep.into_bytes()), ("modules.dep.bin", dep_bin.to_bytes())], Vec::new()))
}

/// `modules.alias`, `modules.alias.bin` and `modules.softdep`.
fn alias_files(entries: &[Entry], modules: &[Option<Module>]) -> Built {
    let mut warnings = Vec::new();
    let mut alias = String::from("# Aliases extracted from modules themselves.\n");
    let mut alias_bin = Index::new("modules.alias.bin");
    let mut softdep = String::from("# Soft dependencies extracted from modules themselves.\n");
    for (i, (entry, module)) in entries.iter().zip(modules).enumerate() {
        let Some(module) = module else { continue };
        let name = &entry.found.name;
        for value in module.values("alias") {
            let _ = writeln!(alias, "alias {value} {name}");
            match normalize_alias(value) {
                Some(key) => {
                    alias_bin.insert(key.as_bytes(), name.as_bytes(), i as u32)?;
                }
                None => warnings.push(format!("Unmatched bracket in {value}")),
            }
        }
        for value in module.values("softdep") {
            let _ = writeln!(softdep, "softdep {name} {value}");
        }
    }
    Ok((
        vec![
            ("modules.alias", alias.into_bytes()),
            ("modules.alias.bin", alias_bin.to_bytes()),
            ("modules.softdep", softdep.into_bytes()),
        ],
        warnings,
    ))
}

/// `modules.symbols` and `modules.symbols.bin`, in kmod's symbol-hash order.
fn symbol_files(entries: &[Entry], symbols: &Symbols<'_>) -> Built {
    let mut owned: Vec<(&str, usize)> =
        symbols.iter().filter_map(|(name, (owner, _))| Some((*name, (*owner)?))).collect();
    kmodhash::sort_in_hash_order(&mut owned, 2048, |(name, _)| name.as_bytes());
    let mut text = String::from("# Aliases for symbols, used by symbol_request().\n");
    let mut index = Index::new("modules.symbols.bin");
    for (name, owner) in &owned {
        let module = &entries[*owner].found.name;
        let _ = writeln!(text, "alias symbol:{name} {module}");
        index.insert(format!("symbol:{name}").as_bytes(), module.as_bytes(), *owner as u32)?;
    }
    Ok((vec![("modules.symbols", text.into_bytes()), ("modules.symbols.bin", index.to_bytes())], Vec::new()))
}

/// `modules.builtin.bin` and `modules.builtin.alias.bin` from the build's `modules.builtin`
/// and `modules.builtin.modinfo` (empty files when those are absent, as kmod writes them).
fn builtin_files(module_dir: &Path, follow_links: bool) -> Built {
    let mut warnings = Vec::new();
    let builtin_bin = match read_optional(&module_dir.join("modules.builtin"), follow_links)? {
        None => Vec::new(),
        Some(text) => {
            let mut index = Index::new("modules.builtin.bin");
            for line in text.split_inclusive(|&b| b == b'\n') {
                if !line.first().is_some_and(u8::is_ascii_alphabetic) {
                    warnings.push(format!("Invalid modules.builtin line: {}", String::from_utf8_lossy(line)));
                    continue;
                }
                let line = String::from_utf8_lossy(line);
                index.insert(module::module_name(Path::new(line.as_ref())).as_bytes(), b"", 0)?;
            }
            index.to_bytes()
        }
    };
    let builtin_alias_bin = match read_optional(&module_dir.join("modules.builtin.modinfo"), follow_links)? {
        None => Vec::new(),
        Some(bytes) => builtin_aliases(&bytes, &mut warnings)?.to_bytes(),
    };
    Ok((
        vec![("modules.builtin.bin", builtin_bin), ("modules.builtin.alias.bin", builtin_alias_bin)],
        warnings,
    ))
}

/// kmod's `alias_normalize`: `-` → `_` outside `[...]`; `None` for an unmatched bracket.
pub fn normalize_alias(alias: &str) -> Option<String> {
    let mut out = String::with_capacity(alias.len());
    let mut chars = alias.chars();
    while let Some(c) = chars.next() {
        match c {
            '-' => out.push('_'),
            ']' => return None,
            '[' => {
                out.push('[');
                loop {
                    match chars.next() {
                        Some(']') => {
                            out.push(']');
                            break;
                        }
                        Some(c) => out.push(c),
                        None => return None,
                    }
                }
            }
            c => out.push(c),
        }
    }
    Some(out)
}

/// `modules.builtin.alias.bin` from `modules.builtin.modinfo` (`name.key=value\0` records),
/// read with kmod's stream logic.
fn builtin_aliases(bytes: &[u8], warnings: &mut Vec<String>) -> Result<Index> {
    let mut index = Index::new("modules.builtin.alias.bin");
    let mut at = 0;
    // Reads up to `end`, a NUL or the end of input; returns the text when `end` was found.
    let read_to = |at: &mut usize, end: u8| -> Option<Vec<u8>> {
        let start = *at;
        while *at < bytes.len() {
            let c = bytes[*at];
            *at += 1;
            if c == end {
                return Some(bytes[start..*at - 1].to_vec());
            }
            if c == 0 {
                return None;
            }
        }
        None
    };
    while at < bytes.len() {
        let Some(name) = read_to(&mut at, b'.').filter(|n| !n.is_empty()) else { continue };
        let key = read_to(&mut at, b'=').unwrap_or_default();
        if key != b"alias" {
            let _ = read_to(&mut at, 0);
            continue;
        }
        let Some(value) = read_to(&mut at, 0).filter(|v| !v.is_empty()) else { continue };
        let value = String::from_utf8_lossy(&value);
        match normalize_alias(&value) {
            Some(alias) => {
                index.insert(alias.as_bytes(), &name, 0)?;
            }
            None => warnings.push(format!("Unmatched bracket in {value}")),
        }
    }
    Ok(index)
}

/// `modules.devname`: `devname:` aliases with a `char-major-M-m` or `block-major-M-m` alias.
fn devnames(entries: &[Entry], modules: &[Option<Module>]) -> (Vec<(&'static str, Vec<u8>)>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut text = String::new();
    for (entry, module) in entries.iter().zip(modules) {
        let Some(module) = module else { continue };
        let (mut devname, mut kind, mut major, mut minor) = (None, None, 0, 0);
        for alias in module.values("alias") {
            if let Some(name) = alias.strip_prefix("devname:") {
                devname = Some(name);
            } else if let Some((a, b)) = scan_major_minor(alias, "char-major-") {
                (kind, major, minor) = (Some('c'), a, b);
            } else if let Some((a, b)) = scan_major_minor(alias, "block-major-") {
                (kind, major, minor) = (Some('b'), a, b);
            }
            if kind.is_some() && devname.is_some() {
                break;
            }
        }
        match (devname, kind) {
            (Some(devname), Some(kind)) => {
                if text.is_empty() {
                    text.push_str("# Device nodes to trigger on-demand module loading.\n");
                }
                let _ = writeln!(text, "{} {devname} {kind}{major}:{minor}", entry.found.name);
            }
            (Some(devname), None) => warnings.push(format!(
                "Module '{}' has devname ({devname}) but lacks major and minor information. Ignoring.",
                entry.found.name
            )),
            _ => {}
        }
    }
    (vec![("modules.devname", text.into_bytes())], warnings)
}

/// `sscanf(value, "<prefix>%u-%u")`.
fn scan_major_minor(value: &str, prefix: &str) -> Option<(u32, u32)> {
    let rest = value.strip_prefix(prefix)?;
    let (major, rest) = scan_unsigned(rest)?;
    let (minor, _) = scan_unsigned(rest.strip_prefix('-')?)?;
    Some((major, minor))
}

/// `%u`: optional white space and sign, then decimal digits (wrapping as C's strtoul does).
fn scan_unsigned(text: &str) -> Option<(u32, &str)> {
    let text = text.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, text) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let value =
        text[..digits].bytes().fold(0u64, |v, d| v.wrapping_mul(10).wrapping_add(u64::from(d - b'0')));
    let value = if negative { value.wrapping_neg() } else { value } as u32;
    Some((value, &text[digits..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(deps: &[&[usize]]) -> Vec<Entry> {
        let mut users = vec![0; deps.len()];
        for list in deps {
            for &d in *list {
                users[d] += 1;
            }
        }
        deps.iter()
            .zip(users)
            .enumerate()
            .map(|(i, (deps, users))| Entry {
                found: Found {
                    path: format!("/m/m{i}.ko"),
                    relpath: Some(format!("m{i}.ko")),
                    name: format!("m{i}"),
                },
                deps: deps.to_vec(),
                users,
                dep_sort: usize::MAX,
            })
            .collect()
    }

    #[test]
    fn dependencies_sort_users_first_and_close_transitively() {
        // m0 -> m1 -> m2, m0 -> m2, m3 -> m1
        let mut list = entries(&[&[1, 2], &[2], &[], &[1]]);
        topological_sort(&mut list).unwrap();
        assert!(list[0].dep_sort < list[1].dep_sort && list[3].dep_sort < list[1].dep_sort);
        assert!(list[1].dep_sort < list[2].dep_sort);
        assert_eq!(all_dependencies(&list, 0), [1, 2]);
        assert_eq!(all_dependencies(&list, 3), [1, 2]);
        assert!(all_dependencies(&list, 2).is_empty());
    }

    #[test]
    fn cycles_are_an_error_naming_the_modules() {
        let mut list = entries(&[&[1], &[2], &[1], &[]]);
        let error = topological_sort(&mut list).unwrap_err();
        assert_eq!(error.to_string(), "dependency cycle among these modules (and what they need): m1, m2");
    }

    #[test]
    fn aliases_normalize_outside_brackets() {
        assert_eq!(normalize_alias("pci:v*d*sv-[0-9]").as_deref(), Some("pci:v*d*sv_[0-9]"));
        assert_eq!(normalize_alias("a]"), None);
        assert_eq!(normalize_alias("a[b"), None);
    }

    #[test]
    fn devname_numbers_scan_like_sscanf() {
        assert_eq!(scan_major_minor("char-major-10-229", "char-major-"), Some((10, 229)));
        assert_eq!(scan_major_minor("char-major-10-*", "char-major-"), None);
        assert_eq!(scan_major_minor("block-major-8- 3x", "block-major-"), Some((8, 3)));
    }

    #[test]
    fn builtin_modinfo_records() {
        let mut warnings = Vec::new();
        let data = b"ext4.alias=fs-ext4\0ext4.license=GPL\0crc32c.alias=crypto-crc32c\0noalias\0x.alias=\0";
        let bytes = builtin_aliases(data, &mut warnings).unwrap().to_bytes();
        let found = crate::index::lookup(&bytes, b"fs_ext4").unwrap();
        assert_eq!(found, [(0, b"ext4".to_vec())]);
        assert!(crate::index::lookup(&bytes, b"crypto_crc32c").is_some());
    }
}
