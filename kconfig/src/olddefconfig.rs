//! `make olddefconfig`: read a `.config` against a tree, give every symbol its value, and write
//! the result exactly as `conf_write` (`scripts/kconfig/confdata.c`) does.

use std::cell::RefCell;

use crate::DotConfig;
use crate::evaluate::Engine;
use crate::expr::Tri;
use crate::tree::{MenuId, PropertyKind, ROOT, SymbolId, SymbolType, Tree};

/// A tree evaluated against one `.config`.
pub struct Evaluated<'t> {
    pub(crate) engine: RefCell<Engine<'t>>,
}

impl Tree {
    /// Evaluates `config` as `conf --olddefconfig` does: values of visible symbols are taken
    /// from it, everything else gets its default.
    pub fn olddefconfig(&self, config: &DotConfig) -> Evaluated<'_> {
        let mut engine = Engine::new(self, config);
        engine.calc_all();
        Evaluated { engine: RefCell::new(engine) }
    }
}

impl Evaluated<'_> {
    /// The tree.
    pub fn tree(&self) -> &Tree {
        self.engine.borrow().tree
    }

    /// A symbol's value as `.config` spells it (`y`, `m`, `n`, a number, a string without
    /// quotes), or `None` when the tree has no such symbol.
    pub fn value(&self, name: &str) -> Option<String> {
        let engine = self.engine.borrow();
        let id = engine.tree.symbol(name)?;
        Some(engine.string_value(id))
    }

    /// Whether `name` is written to `.config` (visible, or given a value by a default, a
    /// `select` or an `imply`).
    pub fn is_written(&self, name: &str) -> bool {
        let engine = self.engine.borrow();
        engine.tree.symbol(name).is_some_and(|id| engine.state(id).write)
    }

    /// What `conf` warns about while evaluating: symbols selected although their direct
    /// dependencies are not met (`unmet direct dependencies detected for …`); and symbols whose
    /// value depends on itself, a tree `conf` refuses (`recursive dependency detected`).
    pub fn warnings(&self) -> Vec<String> {
        let engine = self.engine.borrow();
        let tree = engine.tree;
        let mut warnings: Vec<String> = engine
            .cycles
            .iter()
            .map(|&id| {
                format!("recursive dependency detected: the value of {} depends on itself", tree.name(id))
            })
            .collect();
        for (index, symbol) in tree.symbols.iter().enumerate() {
            let state = engine.state(SymbolId(index as u32));
            if !symbol.kind.is_tristate_like() || symbol.choice.is_some() || symbol.is_choice {
                continue;
            }
            if state.dir_dep < state.rev_dep {
                let depends = symbol.dir_dep.as_ref().map_or_else(|| "y".to_owned(), |d| tree.render(d));
                warnings.push(format!(
                    "unmet direct dependencies detected for {}: depends on [{}] {depends}, selected [{}]",
                    symbol.name, state.dir_dep, state.rev_dep
                ));
            }
        }
        warnings
    }

    /// The `.config` text, byte for byte what `conf_write` writes.
    pub fn to_config(&self) -> String {
        let mut engine = self.engine.borrow_mut();
        let tree = engine.tree;
        let mut writer =
            Writer { out: String::new(), need_newline: false, written: vec![false; tree.symbols.len()] };
        let title = tree.prompt_text(ROOT).unwrap_or("Main menu");
        writer.out.push_str(&format!("#\n# Automatically generated file; DO NOT EDIT.\n# {title}\n#\n"));
        for &child in &tree.menu(ROOT).children {
            writer.menu(&mut engine, child);
        }
        writer.out
    }

    /// Every symbol the `.config` text sets, as settings (for comparing with a request).
    pub fn to_dot_config(&self) -> DotConfig {
        DotConfig::parse(&self.to_config(), std::path::Path::new(".config")).0
    }
}

struct Writer {
    out: String,
    need_newline: bool,
    written: Vec<bool>,
}

impl Writer {
    fn menu(&mut self, engine: &mut Engine<'_>, id: MenuId) {
        let tree = engine.tree;
        let menu = tree.menu(id);
        match menu.symbol {
            None => {
                if engine.menu_visible(id) {
                    let title = tree.prompt_text(id).unwrap_or_default();
                    self.out.push_str(&format!("\n#\n# {title}\n#\n"));
                    self.need_newline = false;
                }
            }
            Some(symbol) if !tree.sym(symbol).is_choice && !self.written[symbol.0 as usize] => {
                engine.calc(symbol);
                if engine.state(symbol).write {
                    if self.need_newline {
                        self.out.push('\n');
                        self.need_newline = false;
                    }
                    self.written[symbol.0 as usize] = true;
                    self.symbol(engine, symbol);
                }
            }
            Some(_) => {}
        }
        for &child in &menu.children {
            self.menu(engine, child);
        }
        if menu.symbol.is_none()
            && let Some(prompt) = menu.prompt
            && matches!(tree.property(prompt).kind, PropertyKind::Prompt { menu: true, .. })
            && engine.menu_visible(id)
        {
            let title = tree.prompt_text(id).unwrap_or_default();
            self.out.push_str(&format!("# end of {title}\n"));
            self.need_newline = true;
        }
    }

    /// `print_symbol_for_dotconfig`.
    fn symbol(&mut self, engine: &Engine<'_>, id: SymbolId) {
        let tree = engine.tree;
        let name = tree.name(id);
        let kind = tree.sym(id).kind;
        let value = engine.string_value(id);
        match kind {
            SymbolType::Unknown => {}
            SymbolType::Bool | SymbolType::Tristate if engine.state(id).tri == Tri::No => {
                self.out.push_str(&format!("# CONFIG_{name} is not set\n"));
            }
            SymbolType::String => {
                let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
                self.out.push_str(&format!("CONFIG_{name}=\"{escaped}\"\n"));
            }
            _ => self.out.push_str(&format!("CONFIG_{name}={value}\n")),
        }
    }
}
