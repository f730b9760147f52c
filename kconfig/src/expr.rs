//! Kconfig expressions and tristate logic (`scripts/kconfig/expr.c`).

use std::fmt;

use crate::tree::SymbolId;

/// A tristate value: `n` < `m` < `y`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tri {
    /// `n`.
    No,
    /// `m`.
    Mod,
    /// `y`.
    Yes,
}

impl Tri {
    /// `&&`: the smaller value.
    pub fn and(self, other: Tri) -> Tri {
        self.min(other)
    }

    /// `||`: the larger value.
    pub fn or(self, other: Tri) -> Tri {
        self.max(other)
    }

    /// `m` becomes `y` (a bool cannot be `m`).
    pub(crate) fn promote(self) -> Tri {
        if self == Tri::Mod { Tri::Yes } else { self }
    }

    /// The value as `.config` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Tri::No => "n",
            Tri::Mod => "m",
            Tri::Yes => "y",
        }
    }
}

impl std::ops::Not for Tri {
    type Output = Tri;

    /// `!`: `y` ↔ `n`, `m` stays.
    fn not(self) -> Tri {
        match self {
            Tri::No => Tri::Yes,
            Tri::Mod => Tri::Mod,
            Tri::Yes => Tri::No,
        }
    }
}

impl fmt::Display for Tri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A comparison between two symbols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comparison {
    /// `=`.
    Equal,
    /// `!=`.
    Unequal,
    /// `<`.
    Less,
    /// `<=`.
    LessEqual,
    /// `>`.
    Greater,
    /// `>=`.
    GreaterEqual,
}

impl Comparison {
    fn operator(self) -> &'static str {
        match self {
            Comparison::Equal => "=",
            Comparison::Unequal => "!=",
            Comparison::Less => "<",
            Comparison::LessEqual => "<=",
            Comparison::Greater => ">",
            Comparison::GreaterEqual => ">=",
        }
    }

    /// Whether the comparison holds for `ordering` (left against right).
    pub(crate) fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::{Equal, Greater, Less};
        match self {
            Comparison::Equal => ordering == Equal,
            Comparison::Unequal => ordering != Equal,
            Comparison::Less => ordering == Less,
            Comparison::LessEqual => ordering != Greater,
            Comparison::Greater => ordering == Greater,
            Comparison::GreaterEqual => ordering != Less,
        }
    }
}

/// An expression over symbols.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expr {
    /// A symbol's tristate value.
    Symbol(SymbolId),
    /// `!e`.
    Not(Box<Expr>),
    /// `a && b`.
    And(Box<Expr>, Box<Expr>),
    /// `a || b`.
    Or(Box<Expr>, Box<Expr>),
    /// `A op B`, compared as strings or numbers by the symbols' types.
    Compare(Comparison, SymbolId, SymbolId),
}

impl Expr {
    /// `a && b`, where a missing expression is `y`.
    pub(crate) fn and_opt(a: Option<Expr>, b: Option<Expr>) -> Option<Expr> {
        match (a, b) {
            (Some(a), Some(b)) => Some(Expr::And(Box::new(a), Box::new(b))),
            (a, None) => a,
            (None, b) => b,
        }
    }

    /// `a || b`, where a missing expression is absent (the caller decides its value).
    pub(crate) fn or_opt(a: Option<Expr>, b: Expr) -> Expr {
        match a {
            Some(a) => Expr::Or(Box::new(a), Box::new(b)),
            None => b,
        }
    }

    /// Every `m` becomes `m && modules` (`rewrite_m` in `menu.c`).
    pub(crate) fn rewrite_m(self, module: SymbolId, modules: SymbolId) -> Expr {
        match self {
            Expr::Not(e) => Expr::Not(Box::new(e.rewrite_m(module, modules))),
            Expr::And(a, b) => {
                Expr::And(Box::new(a.rewrite_m(module, modules)), Box::new(b.rewrite_m(module, modules)))
            }
            Expr::Or(a, b) => {
                Expr::Or(Box::new(a.rewrite_m(module, modules)), Box::new(b.rewrite_m(module, modules)))
            }
            Expr::Symbol(s) if s == module => {
                Expr::And(Box::new(Expr::Symbol(s)), Box::new(Expr::Symbol(modules)))
            }
            other => other,
        }
    }

    /// The operands of a chain of `&&` (or the expression itself).
    pub(crate) fn conjuncts(&self) -> Vec<&Expr> {
        match self {
            Expr::And(a, b) => {
                let mut all = a.conjuncts();
                all.extend(b.conjuncts());
                all
            }
            other => vec![other],
        }
    }

    /// Writes the expression with symbol names from `name`.
    pub(crate) fn render(&self, name: &dyn Fn(SymbolId) -> String) -> String {
        self.render_in(name, 0)
    }

    fn render_in(&self, name: &dyn Fn(SymbolId) -> String, parent: u8) -> String {
        let (text, level) = match self {
            Expr::Symbol(s) => (name(*s), 4),
            Expr::Compare(op, a, b) => (format!("{}{}{}", name(*a), op.operator(), name(*b)), 4),
            Expr::Not(e) => (format!("!{}", e.render_in(name, 3)), 3),
            Expr::And(a, b) => (format!("{} && {}", a.render_in(name, 2), b.render_in(name, 2)), 2),
            Expr::Or(a, b) => (format!("{} || {}", a.render_in(name, 1), b.render_in(name, 1)), 1),
        };
        if level < parent { format!("({text})") } else { text }
    }
}
