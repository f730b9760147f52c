//! A parsed Kconfig tree: symbols, their properties and the menu structure, with dependencies
//! propagated the way `menu_finalize` (`scripts/kconfig/menu.c`) does.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::environment::{Environment, Probes};
use crate::error::LoadError;
use crate::expr::{Expr, Tri};
use crate::parser;

/// A symbol in a [`Tree`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SymbolId(pub(crate) u32);

/// A menu entry in a [`Tree`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct MenuId(pub(crate) u32);

/// A property in a [`Tree`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PropertyId(pub(crate) u32);

/// The constant symbols every tree has.
pub(crate) const YES: SymbolId = SymbolId(0);
pub(crate) const MOD: SymbolId = SymbolId(1);
pub(crate) const NO: SymbolId = SymbolId(2);

/// A symbol's declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolType {
    /// Referenced but never given a type (numbers in expressions, undefined names).
    Unknown,
    /// `bool`.
    Bool,
    /// `tristate`.
    Tristate,
    /// `int`.
    Int,
    /// `hex`.
    Hex,
    /// `string`.
    String,
}

impl SymbolType {
    pub(crate) fn is_tristate_like(self) -> bool {
        matches!(self, SymbolType::Bool | SymbolType::Tristate)
    }
}

/// A file and line in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file, as `source` named it (relative to the source tree).
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A symbol: its name, type, where it is defined and what selects or implies it.
#[derive(Debug, Clone)]
pub(crate) struct Symbol {
    /// Empty for a choice.
    pub(crate) name: String,
    pub(crate) kind: SymbolType,
    pub(crate) constant: bool,
    pub(crate) is_choice: bool,
    pub(crate) properties: Vec<PropertyId>,
    pub(crate) menus: Vec<MenuId>,
    /// For a choice member: the choice's menu entry.
    pub(crate) choice: Option<MenuId>,
    pub(crate) dir_dep: Option<Expr>,
    pub(crate) rev_dep: Option<Expr>,
    pub(crate) implied: Option<Expr>,
}

/// What a property says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PropertyKind {
    /// A prompt; `menu` for `menu` and `menuconfig`, false for `comment` and plain prompts.
    Prompt { text: String, menu: bool },
    /// `default EXPR`.
    Default(Expr),
    /// `select SYMBOL`.
    Select(SymbolId),
    /// `imply SYMBOL`.
    Imply(SymbolId),
    /// `range LOW HIGH`.
    Range(SymbolId, SymbolId),
}

/// A property of a symbol or menu entry with its condition (after finalising: the entry's
/// dependencies and the `if`).
#[derive(Debug, Clone)]
pub(crate) struct Property {
    pub(crate) kind: PropertyKind,
    pub(crate) condition: Option<Expr>,
    pub(crate) menu: MenuId,
    pub(crate) location: Location,
}

/// What a menu entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MenuKind {
    Root,
    Config,
    Choice,
    Menu,
    Comment,
    If,
}

/// An entry of the menu tree.
#[derive(Debug, Clone)]
pub(crate) struct Menu {
    pub(crate) kind: MenuKind,
    pub(crate) symbol: Option<SymbolId>,
    pub(crate) prompt: Option<PropertyId>,
    /// `depends on` (after finalising: with the parents' dependencies).
    pub(crate) dep: Option<Expr>,
    /// `visible if`.
    pub(crate) visibility: Option<Expr>,
    pub(crate) parent: Option<MenuId>,
    pub(crate) children: Vec<MenuId>,
    pub(crate) location: Location,
    /// For a choice: its members in source order.
    pub(crate) members: Vec<SymbolId>,
}

/// A parsed and finalised Kconfig tree.
#[derive(Debug, Clone)]
pub struct Tree {
    pub(crate) symbols: Vec<Symbol>,
    pub(crate) by_name: HashMap<String, SymbolId>,
    pub(crate) constants: HashMap<String, SymbolId>,
    pub(crate) properties: Vec<Property>,
    pub(crate) menus: Vec<Menu>,
    pub(crate) modules: SymbolId,
    pub(crate) messages: Vec<String>,
    pub(crate) probes: Probes,
}

/// The root of the menu tree.
pub(crate) const ROOT: MenuId = MenuId(0);

impl Tree {
    /// Parses `Kconfig` at the top of `srctree` with everything it sources, expanding macros
    /// in `environment` (which runs or replays the probes), and propagates dependencies.
    pub fn load(srctree: &Path, environment: &Environment) -> Result<Tree, LoadError> {
        Tree::load_file(srctree, Path::new("Kconfig"), environment)
    }

    /// Like [`Tree::load`] with another top-level file (relative to `srctree`).
    ///
    /// With live probes the tree is read twice. The first pass starts each probe in the
    /// background as it meets it and reads on with a placeholder for its output, never waiting:
    /// a `:=` variable that takes a running probe's output is expanded again where it is used,
    /// as it would have been where it was assigned, and a call whose command would be built
    /// from a placeholder is not run but made again once the probes it needs have run, so
    /// nothing built from a placeholder is ever run. The real pass takes each output as it
    /// needs it, waiting only for a probe still running.
    pub fn load_file(srctree: &Path, top: &Path, environment: &Environment) -> Result<Tree, LoadError> {
        let mut environment = environment.clone();
        if environment.probes().is_live() {
            let collecting = environment.probes().collecting(environment.variables())?;
            let mut first = environment.with_probes(collecting);
            if parser::parse(srctree, top, &mut first).is_ok() {
                environment.probes_mut().follow(first.probes());
            }
        }
        let mut tree = parser::parse(srctree, top, &mut environment)?;
        environment.probes_mut().settle();
        tree.probes = environment.probes().asked_only();
        tree.finalize();
        Ok(tree)
    }

    pub(crate) fn empty() -> Tree {
        let mut tree = Tree {
            symbols: Vec::new(),
            by_name: HashMap::new(),
            constants: HashMap::new(),
            properties: Vec::new(),
            menus: Vec::new(),
            modules: NO,
            messages: Vec::new(),
            probes: Probes::default(),
        };
        for name in ["y", "m", "n"] {
            let id = tree.new_symbol(name, true);
            tree.symbols[id.0 as usize].kind = SymbolType::Tristate;
            tree.constants.insert(name.into(), id);
        }
        tree.menus.push(Menu {
            kind: MenuKind::Root,
            symbol: None,
            prompt: None,
            dep: None,
            visibility: None,
            parent: None,
            children: Vec::new(),
            location: Location { file: PathBuf::from("Kconfig"), line: 0 },
            members: Vec::new(),
        });
        tree
    }

    pub(crate) fn new_symbol(&mut self, name: &str, constant: bool) -> SymbolId {
        let id = SymbolId(self.symbols.len() as u32);
        self.symbols.push(Symbol {
            name: name.to_owned(),
            kind: SymbolType::Unknown,
            constant,
            is_choice: false,
            properties: Vec::new(),
            menus: Vec::new(),
            choice: None,
            dir_dep: None,
            rev_dep: None,
            implied: None,
        });
        id
    }

    /// `sym_lookup`: `y`, `m`, `n`, or the named (non-constant or constant) symbol, created
    /// on first use.
    pub(crate) fn lookup(&mut self, name: &str, constant: bool) -> SymbolId {
        if let Some(&id) = self.constants.get(name).filter(|_| matches!(name, "y" | "m" | "n")) {
            return id;
        }
        let table = if constant { &self.constants } else { &self.by_name };
        if let Some(&id) = table.get(name) {
            return id;
        }
        let id = self.new_symbol(name, constant);
        if constant { &mut self.constants } else { &mut self.by_name }.insert(name.to_owned(), id);
        id
    }

    /// The symbol named `name` (without `CONFIG_`), if the tree has it.
    pub fn symbol(&self, name: &str) -> Option<SymbolId> {
        self.by_name.get(name).copied()
    }

    /// A symbol's name.
    pub fn name(&self, id: SymbolId) -> &str {
        &self.symbols[id.0 as usize].name
    }

    /// A symbol's declared type.
    pub fn symbol_type(&self, id: SymbolId) -> SymbolType {
        self.sym(id).kind
    }

    /// Where a symbol is defined (`config` lines), in source order.
    pub fn definitions(&self, id: SymbolId) -> Vec<Location> {
        self.sym(id).menus.iter().map(|&m| self.menu(m).location.clone()).collect()
    }

    /// `$(info,…)` output and `$(warning-if,…)` messages from reading the tree.
    pub fn messages(&self) -> &[String] {
        &self.messages
    }

    /// The probes the tree ran or replayed, to record for a later replay.
    pub fn probes(&self) -> &Probes {
        &self.probes
    }

    /// Number of named, non-constant symbols.
    pub fn symbol_count(&self) -> usize {
        self.by_name.len()
    }

    pub(crate) fn sym(&self, id: SymbolId) -> &Symbol {
        &self.symbols[id.0 as usize]
    }

    pub(crate) fn sym_mut(&mut self, id: SymbolId) -> &mut Symbol {
        &mut self.symbols[id.0 as usize]
    }

    pub(crate) fn menu(&self, id: MenuId) -> &Menu {
        &self.menus[id.0 as usize]
    }

    pub(crate) fn menu_mut(&mut self, id: MenuId) -> &mut Menu {
        &mut self.menus[id.0 as usize]
    }

    pub(crate) fn property(&self, id: PropertyId) -> &Property {
        &self.properties[id.0 as usize]
    }

    /// The prompt text of a menu entry.
    pub(crate) fn prompt_text(&self, menu: MenuId) -> Option<&str> {
        match &self.property(self.menu(menu).prompt?).kind {
            PropertyKind::Prompt { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Renders an expression with symbol names (constants quoted unless `y`/`m`/`n`).
    pub(crate) fn render(&self, expr: &Expr) -> String {
        expr.render(&|id| {
            let symbol = self.sym(id);
            if symbol.constant && id.0 > NO.0 { format!("\"{}\"", symbol.name) } else { symbol.name.clone() }
        })
    }

    /// `menu_finalize`: propagates each entry's dependencies to its children and properties,
    /// and builds the reverse dependencies of `select` and `imply` and each symbol's direct
    /// dependencies (the OR over its definitions).
    fn finalize(&mut self) {
        self.finalize_children(ROOT);
    }

    fn finalize_children(&mut self, parent: MenuId) {
        let parent_dep = self.menu(parent).dep.clone();
        let inside_choice = self.menu(parent).kind == MenuKind::Choice;
        let children = self.menu(parent).children.clone();
        let modules = self.modules;
        for &child in &children {
            let own = self.menu(child).dep.clone().map(|e| e.rewrite_m(MOD, modules));
            let base = Expr::and_opt(parent_dep.clone(), own);
            self.menu_mut(child).dep = base.clone();
            let properties: Vec<PropertyId> = match self.menu(child).symbol {
                Some(symbol) => self.sym(symbol).properties.clone(),
                None => self.menu(child).prompt.into_iter().collect(),
            };
            for id in properties {
                let property = &self.properties[id.0 as usize];
                if property.menu != child {
                    continue;
                }
                let condition = property.condition.clone().map(|e| e.rewrite_m(MOD, modules));
                let condition = Expr::and_opt(base.clone(), condition);
                self.properties[id.0 as usize].condition = condition.clone();
                let Some(symbol) = self.menu(child).symbol else { continue };
                let selector =
                    Expr::and_opt(Some(Expr::Symbol(symbol)), condition).unwrap_or(Expr::Symbol(symbol));
                match self.properties[id.0 as usize].kind {
                    PropertyKind::Select(target) => {
                        let target = self.sym_mut(target);
                        target.rev_dep = Some(Expr::or_opt(target.rev_dep.take(), selector));
                    }
                    PropertyKind::Imply(target) => {
                        let target = self.sym_mut(target);
                        target.implied = Some(Expr::or_opt(target.implied.take(), selector));
                    }
                    _ => {}
                }
            }
        }
        for &child in &children {
            if !self.menu(child).children.is_empty() {
                self.finalize_children(child);
            } else if let Some(symbol) = self.menu(child).symbol
                && !inside_choice
            {
                // As `expr_alloc_or`, a missing dependency is dropped from the OR, not `y`.
                if let Some(dep) = self.menu(child).dep.clone() {
                    let symbol = self.sym_mut(symbol);
                    symbol.dir_dep = Some(Expr::or_opt(symbol.dir_dep.take(), dep));
                }
            }
        }
    }

    /// The value of a constant symbol, if `id` is `y`, `m` or `n`.
    pub(crate) fn constant_tri(id: SymbolId) -> Option<Tri> {
        match id {
            YES => Some(Tri::Yes),
            MOD => Some(Tri::Mod),
            NO => Some(Tri::No),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// The tree `kconfig` (a top-level Kconfig) in a new directory, with live probes that see
    /// the directory as `$DIR` and a log file in it as `$LOG`.
    fn load(kconfig: &str) -> (tempfile::TempDir, Tree) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Kconfig"), kconfig).unwrap();
        let variables = BTreeMap::from([
            ("DIR".to_owned(), dir.path().display().to_string()),
            ("LOG".to_owned(), dir.path().join("log").display().to_string()),
            ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
        ]);
        let tree = Tree::load(dir.path(), &Environment::new(variables, Probes::live())).unwrap();
        (dir, tree)
    }

    /// Each probe notes itself in `$LOG`; a command built from another probe's placeholder
    /// would note an `n`.
    const DEPENDENT_PROBES: &str = "\
cc-info := $(shell,echo info >>$LOG; echo GCC 120200)
cc-name := $(shell,echo name $(cc-info) >>$LOG; set -- $(cc-info) && echo $1)
check = $(shell,echo check $(1) >>$LOG; echo y)
config A
\tdef_bool $(check,$(cc-name))
config B
\tdef_bool $(check,$(shell,echo inner >>$LOG; echo inner))
config C
\tdef_bool $(check,$(cc-name))
";

    #[test]
    fn probes_built_from_other_probes_run_once_with_real_output() {
        let (dir, tree) = load(DEPENDENT_PROBES);
        let mut ran: Vec<String> =
            std::fs::read_to_string(dir.path().join("log")).unwrap().lines().map(String::from).collect();
        ran.sort();
        assert_eq!(ran, ["check GCC", "check inner", "info", "inner", "name GCC 120200"]);
        let recorded: Vec<&String> = tree.probes().outputs().keys().collect();
        assert_eq!(recorded.len(), 5, "{recorded:?}");
        assert!(tree.probes().outputs().values().all(|output| output != "n"), "{recorded:?}");
    }

    /// `first` waits (up to 5 s) for `second` to have run: it sees it only if the first pass
    /// started `second` without waiting for `first`, whose value a `:=` takes, to finish. (kiln
    /// runs probes at once, taking them to be independent, as the kernel's compiler and tool
    /// checks are; these two are not, on purpose, to show that they overlap. The C tool, running
    /// them one after another, would say `alone`.)
    const OVERLAPPING_PROBES: &str = "\
first := $(shell,for i in `seq 500`; do [ -e \"$DIR/second\" ] && break; sleep 0.01; done; [ -e \"$DIR/second\" ] && echo overlapped || echo alone)
second := $(shell,touch \"$DIR/second\"; echo second)
config A
\tstring
\tdefault \"$(first) $(second)\"
";

    #[test]
    fn a_simple_variable_does_not_hold_up_the_probes_after_it() {
        let (_dir, tree) = load(OVERLAPPING_PROBES);
        let evaluated = tree.olddefconfig(&crate::DotConfig::default());
        assert_eq!(evaluated.value("A").as_deref(), Some("overlapped second"));
    }

    /// An assignment's name made from a probe's output: the command using the variable must see
    /// it defined, in the first pass too.
    const NAME_FROM_A_PROBE: &str = "\
prefix := $(shell,sleep 0.3; echo gcc)
$(prefix)-flags := -O2
config A
\tstring
\tdefault \"$(shell,echo ran $(gcc-flags) >>$LOG; echo x)\"
";

    #[test]
    fn a_name_made_from_a_probe_is_waited_for_before_it_is_assigned() {
        let (dir, _tree) = load(NAME_FROM_A_PROBE);
        assert_eq!(std::fs::read_to_string(dir.path().join("log")).unwrap(), "ran -O2\n");
    }
}
