//! Why a symbol has its value after `olddefconfig`: the user value, `default`, `select` or
//! `imply` that set it, with file and line, and for a requested value that did not stick the
//! chain of unmet dependencies.

use std::collections::HashSet;
use std::fmt;

use crate::dotconfig::Setting;
use crate::evaluate::Engine;
use crate::expr::{Expr, Tri};
use crate::olddefconfig::Evaluated;
use crate::tree::{Location, PropertyKind, SymbolId, SymbolType, YES};

/// How deep a chain of unmet dependencies is followed.
const MAX_DEPTH: usize = 6;

/// One reason, indented under the reason it explains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    /// 0 for reasons about the symbol itself, one more for each step down a dependency chain.
    pub depth: usize,
    /// What the reason is about.
    pub text: String,
    /// Where it is written in the tree.
    pub location: Option<Location>,
}

/// Why a symbol has its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The symbol (without `CONFIG_`).
    pub symbol: String,
    /// Its `.config` line, or `None` when it is not written.
    pub line: Option<String>,
    /// The requested value, when one was given and it did not stick.
    pub requested: Option<String>,
    /// The reasons, outermost first.
    pub reasons: Vec<Reason>,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.line {
            Some(line) => writeln!(f, "{line}")?,
            None => writeln!(f, "CONFIG_{} is not written", self.symbol)?,
        }
        if let Some(requested) = &self.requested {
            writeln!(f, "  requested {requested}, which did not stick:")?;
        }
        for reason in &self.reasons {
            write!(f, "{}{}", "  ".repeat(reason.depth + 1), reason.text)?;
            match &reason.location {
                Some(location) => writeln!(f, " ({location})")?,
                None => writeln!(f)?,
            }
        }
        Ok(())
    }
}

impl Evaluated<'_> {
    /// Explains `symbol`'s value; with `requested` (a `.config` value such as `y`, `m`, `n`,
    /// `"text"` or `64`), also why that value did not stick.
    pub fn explain(&self, symbol: &str, requested: Option<&Setting>) -> Explanation {
        let mut engine = self.engine.borrow_mut();
        let mut explainer = Explainer { engine: &mut engine, reasons: Vec::new(), seen: HashSet::new() };
        let Some(id) = explainer.engine.tree.symbol(symbol) else {
            return Explanation {
                symbol: symbol.to_owned(),
                line: None,
                requested: requested.map(|r| r.value().to_owned()),
                reasons: vec![Reason {
                    depth: 0,
                    text: "no such symbol in this tree".into(),
                    location: None,
                }],
            };
        };
        explainer.engine.calc(id);
        let line = explainer.line(id);
        let requested = requested
            .map(|r| r.value().trim_matches('"').to_owned())
            .filter(|r| *r != explainer.engine.string_value(id) || !explainer.engine.state(id).write);
        explainer.why(id, 0);
        if let Some(requested) = &requested {
            explainer.why_not(id, requested, 0);
        }
        Explanation {
            symbol: symbol.to_owned(),
            line,
            requested: requested.map(|r| match explainer.engine.tree.sym(id).kind {
                SymbolType::String => format!("\"{r}\""),
                _ => r,
            }),
            reasons: explainer.reasons,
        }
    }
}

struct Explainer<'a, 't> {
    engine: &'a mut Engine<'t>,
    reasons: Vec<Reason>,
    seen: HashSet<SymbolId>,
}

impl Explainer<'_, '_> {
    fn say(&mut self, depth: usize, text: String, location: Option<Location>) {
        self.reasons.push(Reason { depth, text, location });
    }

    fn line(&self, id: SymbolId) -> Option<String> {
        let state = self.engine.state(id);
        if !state.write {
            return None;
        }
        let name = self.engine.tree.name(id);
        let value = self.engine.string_value(id);
        Some(match self.engine.tree.sym(id).kind {
            SymbolType::Bool | SymbolType::Tristate if state.tri == Tri::No => {
                format!("# CONFIG_{name} is not set")
            }
            SymbolType::String => format!("CONFIG_{name}=\"{value}\""),
            _ => format!("CONFIG_{name}={value}"),
        })
    }

    fn describe(&mut self, expr: &Expr) -> String {
        let value = self.engine.eval(expr);
        format!("{} [{}]", self.engine.tree.render(expr), value)
    }

    /// What gave `id` its value.
    fn why(&mut self, id: SymbolId, depth: usize) {
        let tree = self.engine.tree;
        let symbol = tree.sym(id);
        let state = self.engine.state(id).clone();
        let value = self.engine.string_value(id);
        let name = tree.name(id).to_owned();
        if depth > 0 {
            self.say(depth, format!("{name} is {value}"), tree.definitions(id).into_iter().next());
        } else {
            for location in tree.definitions(id) {
                self.say(depth, format!("{name} is defined here"), Some(location));
            }
        }
        let depth = depth + 1;
        if let Some(choice) = symbol.choice {
            let title = tree.prompt_text(choice).unwrap_or("").to_owned();
            self.say(
                depth,
                format!("member of the choice \"{title}\""),
                Some(tree.menu(choice).location.clone()),
            );
            if state.visible == Tri::No {
                self.say(depth, "its prompt is hidden, so it is not part of the choice".into(), None);
            } else if state.tri == Tri::Yes {
                let reason = match &state.user {
                    Some(user) if user.tri == Tri::Yes => "chosen by the configuration",
                    _ => "chosen as the choice's default (or its first visible member)",
                };
                self.say(depth, reason.into(), None);
            } else {
                let chosen =
                    tree.menu(choice).members.iter().copied().find(|&m| self.engine.state(m).tri == Tri::Yes);
                let chosen = chosen.map_or("nothing".to_owned(), |c| tree.name(c).to_owned());
                self.say(depth, format!("not chosen: the choice selects {chosen}"), None);
            }
            return;
        }
        if state.visible != Tri::No
            && let Some(user) = &state.user
        {
            let given =
                if symbol.kind.is_tristate_like() { user.tri.as_str().to_owned() } else { user.text.clone() };
            self.say(depth, format!("set to {given} by the configuration"), None);
            if symbol.kind.is_tristate_like() && user.tri > state.visible {
                self.say(depth, format!("limited to {} by its prompt's condition", state.visible), None);
            }
        } else {
            if state.user.is_some() {
                self.say(depth, "the configuration's value is ignored: no visible prompt".into(), None);
            }
            if let Some(property) = self.engine.default_property(id) {
                let property = tree.property(property);
                if let PropertyKind::Default(expr) = &property.kind {
                    let text = if symbol.kind.is_tristate_like() {
                        format!("default {}", self.describe(expr))
                    } else {
                        format!("default {}", tree.render(expr))
                    };
                    self.say(depth, text, Some(property.location.clone()));
                }
            } else if !symbol.kind.is_tristate_like() || state.tri == Tri::No {
                self.say(depth, "no default applies".into(), None);
            }
        }
        if symbol.kind.is_tristate_like() {
            self.reverse(id, depth, true);
            self.reverse(id, depth, false);
        }
    }

    /// The `select`s (or `imply`s) of `id` that are in effect.
    fn reverse(&mut self, id: SymbolId, depth: usize, select: bool) {
        let tree = self.engine.tree;
        for property in &tree.properties {
            let target = match property.kind {
                PropertyKind::Select(t) if select => t,
                PropertyKind::Imply(t) if !select => t,
                _ => continue,
            };
            let Some(source) = tree.menu(property.menu).symbol else { continue };
            if target != id {
                continue;
            }
            let mut expr = Expr::Symbol(source);
            if let Some(condition) = &property.condition {
                expr = Expr::And(Box::new(expr), Box::new(condition.clone()));
            }
            let value = self.engine.eval(&expr);
            if value != Tri::No {
                let verb = if select { "selected" } else { "implied" };
                self.say(
                    depth,
                    format!("{verb} by {} [{value}]", tree.name(source)),
                    Some(property.location.clone()),
                );
            }
        }
    }

    /// Why `requested` did not stick.
    fn why_not(&mut self, id: SymbolId, requested: &str, depth: usize) {
        let tree = self.engine.tree;
        let symbol = tree.sym(id);
        let state = self.engine.state(id).clone();
        let wanted = match requested {
            "y" => Tri::Yes,
            "m" => Tri::Mod,
            _ => Tri::No,
        };
        if symbol.kind.is_tristate_like() && wanted < state.tri {
            if state.rev_dep > wanted {
                self.say(depth, format!("cannot be lower than {}: it is selected", state.rev_dep), None);
            }
            return;
        }
        if symbol.kind == SymbolType::Bool && wanted == Tri::Mod {
            self.say(depth, "a bool cannot be m".into(), None);
        }
        if symbol.kind == SymbolType::Tristate
            && wanted == Tri::Mod
            && self.engine.effective_type(id) == SymbolType::Bool
        {
            self.say(depth, "modules are disabled, so a tristate is a bool".into(), None);
        }
        let needed = if symbol.kind.is_tristate_like() { wanted.max(Tri::Mod) } else { Tri::Mod };
        for &property in &symbol.properties {
            let property = tree.property(property);
            if !matches!(property.kind, PropertyKind::Prompt { .. }) {
                continue;
            }
            let Some(condition) = &property.condition else { continue };
            if self.engine.eval(condition) < needed {
                let text = format!("its prompt is hidden: needs {}", self.describe(condition));
                self.say(depth, text, Some(property.location.clone()));
                self.unmet(condition, needed, depth + 1);
            }
        }
        if symbol.choice.is_some() && state.visible != Tri::No && wanted == Tri::Yes && state.tri != Tri::Yes
        {
            self.say(
                depth,
                "another member of the choice was set to y later in the configuration".into(),
                None,
            );
        }
        if !symbol.kind.is_tristate_like() && state.visible != Tri::No {
            for &property in &symbol.properties {
                let property = tree.property(property);
                if let PropertyKind::Range(low, high) = property.kind
                    && property.condition.as_ref().is_none_or(|c| self.engine.eval(c) != Tri::No)
                {
                    let (low, high) = (self.engine.string_value(low), self.engine.string_value(high));
                    self.say(depth, format!("outside range {low} {high}"), Some(property.location.clone()));
                    break;
                }
            }
        }
    }

    /// The parts of `expr` below `needed`, following symbols down their own reasons.
    fn unmet(&mut self, expr: &Expr, needed: Tri, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        let conjuncts: Vec<Expr> = expr.conjuncts().into_iter().cloned().collect();
        for part in conjuncts {
            if self.engine.eval(&part) >= needed {
                continue;
            }
            match &part {
                Expr::Symbol(s) if *s != YES && !self.engine.tree.sym(*s).constant => {
                    self.follow(*s, needed, depth)
                }
                Expr::Compare(_, a, b) => {
                    let text = self.describe(&part);
                    self.say(depth, text, None);
                    for side in [*a, *b] {
                        if !self.engine.tree.sym(side).constant {
                            self.follow(side, Tri::Yes, depth + 1);
                        }
                    }
                }
                _ => {
                    let text = self.describe(&part);
                    self.say(depth, text, None);
                }
            }
        }
    }

    /// A dependency symbol: its value, why, and (when too low) its own unmet dependencies.
    fn follow(&mut self, id: SymbolId, needed: Tri, depth: usize) {
        if !self.seen.insert(id) || depth > MAX_DEPTH {
            return;
        }
        self.engine.calc(id);
        self.why(id, depth);
        let state = self.engine.state(id).clone();
        if state.tri >= needed || self.engine.tree.sym(id).choice.is_some() {
            return;
        }
        let tree = self.engine.tree;
        if let Some(dep) = tree.sym(id).dir_dep.clone()
            && state.dir_dep < needed
        {
            let text = format!("depends on {}", self.describe(&dep));
            self.say(depth + 1, text, None);
            self.unmet(&dep, needed, depth + 2);
        }
    }
}
