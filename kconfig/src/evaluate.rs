//! Symbol values with the semantics of Linux 6.12's `scripts/kconfig/symbol.c`
//! (`sym_calc_value`, `sym_calc_visibility`, `sym_calc_choice`) and `expr.c`
//! (`expr_calc_value`), computed on demand and memoised.

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::DotConfig;
use crate::dotconfig::Setting;
use crate::expr::{Expr, Tri};
use crate::number;
use crate::tree::{MenuId, PropertyId, PropertyKind, SymbolId, SymbolType, Tree};

/// A value read from the `.config` (`conf_set_sym_val`).
#[derive(Debug, Clone)]
pub(crate) struct UserValue {
    pub(crate) tri: Tri,
    pub(crate) text: String,
}

/// What is known about one symbol.
#[derive(Debug, Clone)]
pub(crate) struct State {
    valid: bool,
    pub(crate) tri: Tri,
    /// `curr.val`: the value of an int, hex or string symbol; `n` for bool and tristate.
    pub(crate) text: String,
    pub(crate) visible: Tri,
    pub(crate) dir_dep: Tri,
    pub(crate) rev_dep: Tri,
    pub(crate) implied: Tri,
    pub(crate) write: bool,
    pub(crate) user: Option<UserValue>,
}

/// The evaluator over one tree and one set of user values.
pub(crate) struct Engine<'t> {
    pub(crate) tree: &'t Tree,
    pub(crate) states: Vec<State>,
    modules: Tri,
    /// Choice members in priority order (`choice_members` after reading the `.config`).
    priority: HashMap<MenuId, Vec<SymbolId>>,
    /// Symbols whose value is being calculated.
    computing: Vec<bool>,
    /// Symbols whose value depends on itself (`conf` refuses such trees; here the inner use
    /// sees the value so far, as `sym_calc_value` would).
    pub(crate) cycles: Vec<SymbolId>,
}

impl<'t> Engine<'t> {
    /// Reads `config` as `conf_read_simple` does: values are checked against each symbol's type;
    /// a choice member that gets a value moves to the head of its choice's priority list.
    pub(crate) fn new(tree: &'t Tree, config: &DotConfig) -> Engine<'t> {
        let states = tree
            .symbols
            .iter()
            .enumerate()
            .map(|(index, symbol)| {
                let constant = Tree::constant_tri(SymbolId(index as u32));
                State {
                    valid: constant.is_some(),
                    tri: constant.unwrap_or(Tri::No),
                    text: if constant.is_some() { symbol.name.clone() } else { String::new() },
                    visible: Tri::No,
                    dir_dep: Tri::Yes,
                    rev_dep: Tri::No,
                    implied: Tri::No,
                    write: false,
                    user: None,
                }
            })
            .collect();
        let mut engine = Engine {
            tree,
            states,
            modules: Tri::No,
            priority: HashMap::new(),
            computing: vec![false; tree.symbols.len()],
            cycles: Vec::new(),
        };
        let mut positions: HashMap<MenuId, Vec<(usize, SymbolId)>> = HashMap::new();
        for (name, setting) in config.iter() {
            let Some(id) = tree.symbol(name) else { continue };
            let Some(user) = user_value(tree.sym(id).kind, setting) else { continue };
            engine.states[id.0 as usize].user = Some(user);
            if let Some(choice) = tree.sym(id).choice {
                positions.entry(choice).or_default().push((config.position(name).unwrap_or(0), id));
            }
        }
        for (index, menu) in tree.menus.iter().enumerate() {
            if menu.members.is_empty() {
                continue;
            }
            let id = MenuId(index as u32);
            let mut assigned = positions.remove(&id).unwrap_or_default();
            assigned.sort_by_key(|&(position, _)| std::cmp::Reverse(position));
            let mut order: Vec<SymbolId> = assigned.iter().map(|&(_, s)| s).collect();
            let unassigned: Vec<SymbolId> =
                menu.members.iter().copied().filter(|s| !order.contains(s)).collect();
            order.extend(unassigned);
            engine.priority.insert(id, order);
        }
        engine.calc(tree.modules);
        engine
    }

    pub(crate) fn state(&self, id: SymbolId) -> &State {
        &self.states[id.0 as usize]
    }

    fn state_mut(&mut self, id: SymbolId) -> &mut State {
        &mut self.states[id.0 as usize]
    }

    /// `sym_get_type`: a tristate is a bool while modules are off.
    pub(crate) fn effective_type(&self, id: SymbolId) -> SymbolType {
        match self.tree.sym(id).kind {
            SymbolType::Tristate if self.modules == Tri::No => SymbolType::Bool,
            kind => kind,
        }
    }

    /// `expr_calc_value`.
    pub(crate) fn eval(&mut self, expr: &Expr) -> Tri {
        match expr {
            Expr::Symbol(id) => {
                self.calc(*id);
                self.state(*id).tri
            }
            Expr::Not(e) => !self.eval(e),
            Expr::And(a, b) => {
                let a = self.eval(a);
                a.and(self.eval(b))
            }
            Expr::Or(a, b) => {
                let a = self.eval(a);
                a.or(self.eval(b))
            }
            Expr::Compare(op, a, b) => {
                self.calc(*a);
                self.calc(*b);
                let ordering = self.compare(*a, *b);
                if op.holds(ordering) { Tri::Yes } else { Tri::No }
            }
        }
    }

    fn eval_opt(&mut self, expr: Option<&Expr>, absent: Tri) -> Tri {
        match expr {
            Some(expr) => self.eval(expr),
            None => absent,
        }
    }

    /// `sym_get_string_value`.
    pub(crate) fn string_value(&self, id: SymbolId) -> String {
        let state = self.state(id);
        if self.tree.sym(id).kind.is_tristate_like() {
            state.tri.as_str().to_owned()
        } else {
            state.text.clone()
        }
    }

    fn compare(&self, a: SymbolId, b: SymbolId) -> Ordering {
        let (left, right) = (self.string_value(a), self.string_value(b));
        let (type_a, type_b) = (self.tree.sym(a).kind, self.tree.sym(b).kind);
        if type_a == SymbolType::String && type_b == SymbolType::String {
            return left.as_bytes().cmp(right.as_bytes());
        }
        match (number::parse_for_comparison(&left, type_a), number::parse_for_comparison(&right, type_b)) {
            (Some(l), Some(r)) => l.compare(r),
            _ => left.as_bytes().cmp(right.as_bytes()),
        }
    }

    /// `sym_calc_visibility`.
    pub(crate) fn calc_visibility(&mut self, id: SymbolId) {
        let tree = self.tree;
        let symbol = tree.sym(id);
        let mut visible = Tri::No;
        for &property in &symbol.properties {
            if let PropertyKind::Prompt { .. } = tree.property(property).kind {
                visible = visible.or(self.eval_opt(tree.property(property).condition.as_ref(), Tri::Yes));
            }
        }
        if visible == Tri::Mod && (symbol.kind != SymbolType::Tristate || self.modules == Tri::No) {
            visible = Tri::Yes;
        }
        self.state_mut(id).visible = visible;
        if symbol.choice.is_some() {
            return;
        }
        let bool_like = self.effective_type(id) == SymbolType::Bool;
        let clamp = |tri: Tri| if bool_like { tri.promote() } else { tri };
        let dir_dep = clamp(self.eval_opt(symbol.dir_dep.as_ref(), Tri::Yes));
        let rev_dep = clamp(self.eval_opt(symbol.rev_dep.as_ref(), Tri::No));
        let implied = clamp(self.eval_opt(symbol.implied.as_ref(), Tri::No));
        let state = self.state_mut(id);
        state.dir_dep = dir_dep;
        state.rev_dep = rev_dep;
        state.implied = implied;
    }

    /// The first `default` whose condition holds (`sym_get_default_prop`).
    pub(crate) fn default_property(&mut self, id: SymbolId) -> Option<PropertyId> {
        let tree = self.tree;
        for &property in &tree.sym(id).properties {
            let property_data = tree.property(property);
            if let PropertyKind::Default(_) = property_data.kind
                && self.eval_opt(property_data.condition.as_ref(), Tri::Yes) != Tri::No
            {
                return Some(property);
            }
        }
        None
    }

    /// `sym_calc_value`.
    pub(crate) fn calc(&mut self, id: SymbolId) {
        if self.state(id).valid {
            if self.computing[id.0 as usize] && !self.cycles.contains(&id) {
                self.cycles.push(id);
            }
            return;
        }
        self.state_mut(id).valid = true;
        let tree = self.tree;
        let symbol = tree.sym(id);
        let initial = match symbol.kind {
            SymbolType::Int => "0",
            SymbolType::Hex => "0x0",
            SymbolType::String => "",
            SymbolType::Bool | SymbolType::Tristate => "n",
            SymbolType::Unknown => {
                let state = self.state_mut(id);
                state.text = symbol.name.clone();
                state.tri = Tri::No;
                return;
            }
        };
        self.computing[id.0 as usize] = true;
        self.state_mut(id).write = false;
        self.calc_visibility(id);
        if self.state(id).visible != Tri::No {
            self.state_mut(id).write = true;
        }
        {
            let state = self.state_mut(id);
            state.tri = Tri::No;
            state.text = initial.to_owned();
        }
        let mut text = initial.to_owned();
        let mut tri = Tri::No;
        match self.effective_type(id) {
            SymbolType::Bool | SymbolType::Tristate => {
                if let Some(choice) = symbol.choice {
                    self.calc_choice(choice);
                    tri = self.state(id).tri;
                } else {
                    tri = self.calc_tristate(id);
                }
                if tri == Tri::Mod && self.effective_type(id) == SymbolType::Bool {
                    tri = Tri::Yes;
                }
            }
            SymbolType::Int | SymbolType::Hex | SymbolType::String => {
                let state = self.state(id);
                if let (true, Some(user)) = (state.visible != Tri::No, &state.user) {
                    text = user.text.clone();
                } else if let Some(property) = self.default_property(id)
                    && let PropertyKind::Default(Expr::Symbol(source)) = &tree.property(property).kind
                {
                    self.state_mut(id).write = true;
                    self.calc(*source);
                    text = self.state(*source).text.clone();
                }
            }
            SymbolType::Unknown => {}
        }
        let state = self.state_mut(id);
        state.tri = tri;
        state.text = text;
        self.validate_range(id);
        if id == tree.modules {
            self.modules = self.state(id).tri;
        }
        if symbol.is_choice {
            self.state_mut(id).write = false;
        }
        self.computing[id.0 as usize] = false;
    }

    /// The bool/tristate part of `sym_calc_value` for a symbol outside a choice.
    fn calc_tristate(&mut self, id: SymbolId) -> Tri {
        let state = self.state(id).clone();
        let mut tri = Tri::No;
        match (&state.user, state.visible) {
            (Some(user), visible) if visible != Tri::No => tri = user.tri.and(visible),
            _ => {
                if state.rev_dep != Tri::No {
                    self.state_mut(id).write = true;
                }
                if !self.tree.sym(id).is_choice {
                    if let Some(property) = self.default_property(id) {
                        let property = self.tree.property(property);
                        if let PropertyKind::Default(value) = &property.kind {
                            let condition = self.eval_opt(property.condition.as_ref(), Tri::Yes);
                            tri = self.eval(value).and(condition);
                            if tri != Tri::No {
                                self.state_mut(id).write = true;
                            }
                        }
                    }
                    if state.implied != Tri::No {
                        self.state_mut(id).write = true;
                        tri = tri.or(state.implied).and(state.dir_dep);
                    }
                }
            }
        }
        tri.or(state.rev_dep)
    }

    /// `sym_calc_choice`: the chosen member is `y`, the other visible members `n`.
    fn calc_choice(&mut self, choice: MenuId) -> Option<SymbolId> {
        let priority = self.priority.get(&choice).cloned().unwrap_or_default();
        let mut chosen = None;
        for &member in &priority {
            self.calc_visibility(member);
            let state = self.state(member);
            if state.visible != Tri::No && state.user.as_ref().is_some_and(|u| u.tri == Tri::Yes) {
                chosen = Some(member);
                break;
            }
        }
        if chosen.is_none() {
            chosen = self
                .choice_default(choice)
                .filter(|&d| self.state(d).user.as_ref().is_none_or(|u| u.tri != Tri::No));
        }
        let members = &self.tree.menu(choice).members;
        if chosen.is_none() {
            chosen = members
                .iter()
                .copied()
                .find(|&m| self.state(m).visible != Tri::No && self.state(m).user.is_none());
        }
        if chosen.is_none() {
            chosen = priority.iter().rev().copied().find(|&m| self.state(m).visible != Tri::No);
        }
        for &member in members {
            let state = self.state_mut(member);
            if state.visible == Tri::No {
                continue;
            }
            state.tri = if Some(member) == chosen { Tri::Yes } else { Tri::No };
            state.valid = true;
            state.write = true;
        }
        chosen
    }

    /// `sym_choice_default`: the first default whose condition holds and whose member is
    /// visible, else the first visible member.
    pub(crate) fn choice_default(&mut self, choice: MenuId) -> Option<SymbolId> {
        let tree = self.tree;
        let symbol = tree.menu(choice).symbol?;
        for &property in &tree.sym(symbol).properties {
            let property = tree.property(property);
            if let PropertyKind::Default(Expr::Symbol(member)) = &property.kind
                && self.eval_opt(property.condition.as_ref(), Tri::Yes) != Tri::No
                && self.state(*member).visible != Tri::No
            {
                return Some(*member);
            }
        }
        tree.menu(choice).members.iter().copied().find(|&m| self.state(m).visible != Tri::No)
    }

    /// `sym_validate_range`: an int or hex value outside the first applicable range becomes the
    /// violated bound.
    fn validate_range(&mut self, id: SymbolId) {
        let tree = self.tree;
        let base = match tree.sym(id).kind {
            SymbolType::Int => 10,
            SymbolType::Hex => 16,
            _ => return,
        };
        let mut applicable = None;
        for &property in &tree.sym(id).properties {
            let property = tree.property(property);
            if let PropertyKind::Range(low, high) = property.kind
                && self.eval_opt(property.condition.as_ref(), Tri::Yes) != Tri::No
            {
                applicable = Some((low, high));
                break;
            }
        }
        let Some((low, high)) = applicable else { return };
        let value = number::strtoll(&self.state(id).text, base).value;
        let bound_value = |engine: &mut Engine<'_>, bound: SymbolId| {
            engine.calc(bound);
            let base = match tree.sym(bound).kind {
                SymbolType::Int => 10,
                SymbolType::Hex => 16,
                _ => base,
            };
            number::strtoll(&engine.state(bound).text, base).value
        };
        let bound = if value >= bound_value(self, low) {
            if value <= bound_value(self, high) {
                return;
            }
            high
        } else {
            low
        };
        let text = self.state(bound).text.clone();
        self.state_mut(id).text = text;
    }

    /// Calculates every symbol, as `conf_read` does after reading.
    pub(crate) fn calc_all(&mut self) {
        for index in 0..self.states.len() {
            self.calc(SymbolId(index as u32));
        }
    }

    /// `menu_is_visible` for an entry without a symbol (menus and comments).
    pub(crate) fn menu_visible(&mut self, menu: MenuId) -> bool {
        let tree = self.tree;
        let entry = tree.menu(menu);
        let Some(prompt) = entry.prompt else { return false };
        if let Some(visibility) = &entry.visibility
            && self.eval(visibility) == Tri::No
        {
            return false;
        }
        if let Some(symbol) = entry.symbol {
            self.calc(symbol);
        }
        self.eval_opt(tree.property(prompt).condition.as_ref(), Tri::Yes) != Tri::No
    }
}

/// `conf_set_sym_val`: the value a `.config` line gives a symbol of type `kind`, if valid.
fn user_value(kind: SymbolType, setting: &Setting) -> Option<UserValue> {
    let raw = setting.value();
    let tri = |tri: Tri| Some(UserValue { tri, text: String::new() });
    match kind {
        SymbolType::Tristate if raw.starts_with('m') => tri(Tri::Mod),
        SymbolType::Bool | SymbolType::Tristate => match raw.as_bytes().first() {
            Some(b'y') => tri(Tri::Yes),
            Some(b'n') => tri(Tri::No),
            _ => None,
        },
        SymbolType::String => {
            let body = raw.strip_prefix('"')?;
            let mut text = String::new();
            let mut chars = body.chars();
            loop {
                match chars.next()? {
                    '"' => return Some(UserValue { tri: Tri::No, text }),
                    '\\' => text.push(chars.next()?),
                    c => text.push(c),
                }
            }
        }
        SymbolType::Int | SymbolType::Hex => {
            number::valid(raw, kind).then(|| UserValue { tri: Tri::No, text: raw.to_owned() })
        }
        SymbolType::Unknown => None,
    }
}
