//! Reads a Kconfig tree statement by statement (`scripts/kconfig/parser.y`), following
//! `source` statements, into a [`Tree`].

use std::path::{Path, PathBuf};

use crate::environment::Environment;
use crate::error::LoadError;
use crate::expr::{Comparison, Expr};
use crate::lexer::{Lexer, Token};
use crate::macros::{Flavor, Preprocessor};
use crate::tree::{
    Location, Menu, MenuId, MenuKind, Property, PropertyId, PropertyKind, ROOT, SymbolId, SymbolType, Tree,
};

/// Parses `top` (relative to `srctree`) and everything it sources.
pub(crate) fn parse(srctree: &Path, top: &Path, environment: &mut Environment) -> Result<Tree, LoadError> {
    let scratch = tempfile::tempdir().map_err(|source| LoadError::Scratch { source })?;
    let mut parser = Parser {
        tree: Tree::empty(),
        macros: Preprocessor::new(environment, scratch.path()),
        srctree: srctree.to_owned(),
        blocks: vec![ROOT],
        entry: None,
        includes: Vec::new(),
        modules: None,
    };
    parser.tree.menus[0].location.file = top.to_owned();
    parser.file(&top.display().to_string(), None)?;
    if parser.blocks.len() > 1 {
        let open = parser.tree.menu(parser.blocks[parser.blocks.len() - 1]).location.clone();
        return Err(LoadError::Syntax {
            file: open.file,
            line: open.line,
            message: "block is never closed".into(),
        });
    }
    parser.finish_entry()?;
    parser.macros.retry(true);
    if parser.tree.menus[0].prompt.is_none() {
        let root_location = parser.tree.menus[0].location.clone();
        parser.entry = Some(ROOT);
        parser.add_prompt("Main menu".into(), None, false, root_location);
    }
    parser.tree.messages = std::mem::take(&mut parser.macros.messages);
    Ok(parser.tree)
}

/// How often a statement's structure is waited for at most (chains of probes in the Linux tree
/// are three long).
const STRUCTURE_ROUNDS: usize = 8;

struct Parser<'e> {
    tree: Tree,
    macros: Preprocessor<'e>,
    srctree: PathBuf,
    /// Open `menu`, `choice` and `if` blocks, the root at the bottom.
    blocks: Vec<MenuId>,
    /// The entry that option lines attach to.
    entry: Option<MenuId>,
    /// Files being read, outermost first.
    includes: Vec<String>,
    /// The symbol with the `modules` attribute.
    modules: Option<SymbolId>,
}

/// Statements that take effect on the lines after them.
enum After {
    Nothing,
    Help,
}

impl Parser<'_> {
    fn location(&self) -> Location {
        Location { file: self.macros.file.clone(), line: self.macros.line }
    }

    fn error(&self, message: impl Into<String>) -> LoadError {
        LoadError::Syntax { file: self.macros.file.clone(), line: self.macros.line, message: message.into() }
    }

    /// Whether `path` is a file below the source tree once its links are resolved (a file that
    /// does not exist is judged by its name, and then reported missing).
    fn inside_srctree(&self, path: &Path) -> bool {
        let Ok(root) = std::fs::canonicalize(&self.srctree) else { return false };
        match std::fs::canonicalize(path) {
            Ok(resolved) => resolved.starts_with(&root),
            Err(_) => {
                path.starts_with(&self.srctree)
                    && !path.components().any(|c| matches!(c, std::path::Component::ParentDir))
            }
        }
    }

    fn file(&mut self, name: &str, from: Option<Location>) -> Result<(), LoadError> {
        let path = if Path::new(name).is_absolute() { PathBuf::from(name) } else { self.srctree.join(name) };
        if self.macros.confined() && !self.inside_srctree(&path) {
            let location = from.clone().unwrap_or_else(|| self.location());
            return Err(LoadError::OutsideSource {
                file: location.file,
                line: location.line,
                name: name.into(),
            });
        }
        if let Some(from) = &from
            && self.includes.iter().any(|included| included == name)
        {
            return Err(LoadError::RecursiveSource {
                file: from.file.clone(),
                line: from.line,
                name: name.into(),
            });
        }
        let text = match std::fs::read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(source) => {
                return Err(match from {
                    Some(from) if source.kind() == std::io::ErrorKind::NotFound => {
                        LoadError::MissingSource { file: from.file, line: from.line, name: name.into() }
                    }
                    _ => LoadError::Read { path, source },
                });
            }
        };
        self.includes.push(name.to_owned());
        // While probes are collected, calls whose probes have run start their commands now.
        self.macros.retry(false);
        let saved = (std::mem::replace(&mut self.macros.file, PathBuf::from(name)), self.macros.line);
        let lines: Vec<&str> = text.split('\n').collect();
        let mut index = 0;
        let mut in_help = false;
        let mut help_indent = 0usize;
        let mut help_first = false;
        while index < lines.len() {
            if in_help {
                let line = lines[index];
                let body = line.trim_start_matches([' ', '\t']);
                if body.is_empty() {
                    index += 1;
                    continue;
                }
                let indent = columns(&line[..line.len() - body.len()]);
                let ends = if indent == 0 { !help_first } else { help_indent != 0 && indent < help_indent };
                help_first = false;
                if !ends {
                    if help_indent == 0 {
                        help_indent = indent;
                    }
                    index += 1;
                    continue;
                }
                in_help = false;
            }
            let start = index;
            let mut logical = String::from(lines[index]);
            index += 1;
            while logical.ends_with('\\') && !logical.trim_start().starts_with('#') && index < lines.len() {
                logical.pop();
                logical.push_str(lines[index]);
                index += 1;
            }
            self.macros.line = start + 1;
            if let After::Help = self.statement(&logical)? {
                in_help = true;
                help_indent = 0;
                help_first = true;
            }
        }
        self.includes.pop();
        self.macros.file = saved.0;
        self.macros.line = saved.1;
        Ok(())
    }

    /// While probes are collected: an assignment's name or a sourced file's name built from a
    /// running probe's placeholder would change what the pass reads, so the probes it waits for
    /// are waited for first (the pass reads on past placeholders everywhere else).
    fn settle_structure(&mut self, line: &str) -> Result<(), LoadError> {
        for _ in 0..STRUCTURE_ROUNDS {
            self.macros.take_token_pending();
            let mut lexer = Lexer::new(line);
            let structural = match lexer.next(&mut self.macros)? {
                Some(Token::Word(_)) => {
                    matches!(lexer.next(&mut self.macros)?, Some(Token::Operator("=" | ":=" | "+=")))
                }
                Some(Token::Keyword("source")) => lexer.next(&mut self.macros)?.is_some(),
                _ => false,
            };
            let pending = self.macros.take_token_pending();
            if !structural || pending.is_empty() {
                return Ok(());
            }
            self.macros.wait_for(&pending);
        }
        Ok(())
    }

    fn statement(&mut self, line: &str) -> Result<After, LoadError> {
        if self.macros.collecting() {
            self.settle_structure(line)?;
        }
        let mut lexer = Lexer::new(line);
        let Some(first) = lexer.next(&mut self.macros)? else { return Ok(After::Nothing) };
        if let Token::Word(name) = &first {
            let flavor = match lexer.next(&mut self.macros)? {
                Some(Token::Operator("=")) => Flavor::Recursive,
                Some(Token::Operator(":=")) => Flavor::Simple,
                Some(Token::Operator("+=")) => Flavor::Append,
                _ => return Err(self.error(format!("unknown statement \"{name}\""))),
            };
            let value = lexer.rest().to_owned();
            self.finish_entry()?;
            self.macros.assign(name, &value, flavor)?;
            return Ok(After::Nothing);
        }
        let mut tokens = vec![first];
        while let Some(token) = lexer.next(&mut self.macros)? {
            tokens.push(token);
        }
        let Token::Keyword(keyword) = tokens[0] else { return Err(self.error("invalid statement")) };
        let args = Arguments { tokens: &tokens[1..], position: 0 };
        self.keyword(keyword, args)
    }

    fn keyword(&mut self, keyword: &'static str, mut args: Arguments<'_>) -> Result<After, LoadError> {
        let in_choice = self.blocks.iter().any(|&b| self.tree.menu(b).kind == MenuKind::Choice);
        let location = self.location();
        match keyword {
            "config" | "menuconfig" => {
                if in_choice && keyword == "menuconfig" {
                    return Err(self.error("invalid statement in a choice"));
                }
                self.finish_entry()?;
                let name = args.word().ok_or_else(|| self.error(format!("{keyword} needs a symbol name")))?;
                self.end(&args)?;
                let symbol = self.tree.lookup(&name, false);
                let menu = self.add_entry(MenuKind::Config, Some(symbol), location);
                if in_choice {
                    let choice = *self
                        .blocks
                        .iter()
                        .rev()
                        .find(|&&b| self.tree.menu(b).kind == MenuKind::Choice)
                        .unwrap_or(&ROOT);
                    if !self.tree.menu(choice).members.contains(&symbol) {
                        self.tree.menu_mut(choice).members.push(symbol);
                    }
                    if self.tree.sym(symbol).choice.is_none() {
                        self.tree.sym_mut(symbol).choice = Some(choice);
                    }
                }
                self.entry = Some(menu);
            }
            "choice" => {
                if in_choice {
                    return Err(self.error("invalid statement in a choice"));
                }
                self.finish_entry()?;
                self.end(&args)?;
                let symbol = self.tree.new_symbol("", false);
                self.tree.sym_mut(symbol).is_choice = true;
                self.tree.sym_mut(symbol).kind = SymbolType::Bool;
                let menu = self.add_entry(MenuKind::Choice, Some(symbol), location);
                self.blocks.push(menu);
                self.entry = Some(menu);
            }
            "menu" | "comment" => {
                if in_choice && keyword == "menu" {
                    return Err(self.error("invalid statement in a choice"));
                }
                self.finish_entry()?;
                let text =
                    args.quoted().ok_or_else(|| self.error(format!("{keyword} needs a quoted title")))?;
                self.end(&args)?;
                let kind = if keyword == "menu" { MenuKind::Menu } else { MenuKind::Comment };
                let menu = self.add_entry(kind, None, location.clone());
                self.entry = Some(menu);
                self.add_prompt(text, None, keyword == "menu", location);
                if kind == MenuKind::Menu {
                    self.blocks.push(menu);
                }
            }
            "if" => {
                self.finish_entry()?;
                let condition = self.expression(&mut args)?;
                self.end(&args)?;
                let menu = self.add_entry(MenuKind::If, None, location);
                self.tree.menu_mut(menu).dep = Some(condition);
                self.blocks.push(menu);
                self.entry = None;
            }
            "endmenu" | "endchoice" | "endif" => {
                self.finish_entry()?;
                self.end(&args)?;
                let expected = match keyword {
                    "endmenu" => MenuKind::Menu,
                    "endchoice" => MenuKind::Choice,
                    _ => MenuKind::If,
                };
                let open = *self.blocks.last().unwrap_or(&ROOT);
                let kind = self.tree.menu(open).kind;
                if kind != expected {
                    let within = match kind {
                        MenuKind::Menu => "within menu block",
                        MenuKind::Choice => "within choice block",
                        MenuKind::If => "within if block",
                        _ => "outside any block",
                    };
                    return Err(self.error(format!("unexpected '{keyword}' {within}")));
                }
                if self.tree.menu(open).location.file != self.macros.file {
                    return Err(self.error(format!("'{keyword}' in different file than its block")));
                }
                self.blocks.pop();
            }
            "source" => {
                if in_choice {
                    return Err(self.error("invalid statement in a choice"));
                }
                self.finish_entry()?;
                let name = args.quoted().ok_or_else(|| self.error("source needs a quoted file name"))?;
                self.end(&args)?;
                self.file(&name, Some(location))?;
            }
            "mainmenu" => {
                let text = args.quoted().ok_or_else(|| self.error("mainmenu needs a quoted title"))?;
                self.end(&args)?;
                let saved = self.entry.replace(ROOT);
                self.add_prompt(text, None, true, location);
                self.entry = saved;
            }
            _ => return self.option(keyword, args, location),
        }
        Ok(After::Nothing)
    }

    /// An option line of the current entry.
    fn option(
        &mut self,
        keyword: &'static str,
        mut args: Arguments<'_>,
        location: Location,
    ) -> Result<After, LoadError> {
        let Some(entry) = self.entry else {
            return Err(self.error(format!("'{keyword}' outside a config entry")));
        };
        let kind = self.tree.menu(entry).kind;
        let allowed = match kind {
            MenuKind::Config => !matches!(keyword, "visible" | "on"),
            MenuKind::Choice => matches!(keyword, "prompt" | "bool" | "default" | "depends" | "help"),
            MenuKind::Menu => matches!(keyword, "depends" | "visible"),
            MenuKind::Comment => keyword == "depends",
            MenuKind::Root | MenuKind::If => false,
        };
        if !allowed {
            return Err(self.error(format!("'{keyword}' is not an option of this entry")));
        }
        match keyword {
            "bool" | "tristate" | "int" | "hex" | "string" => {
                self.set_type(entry, type_of(keyword));
                if let Some(text) = args.quoted() {
                    let condition = self.if_expression(&mut args)?;
                    self.add_prompt(text, condition, false, location);
                }
                self.end(&args)?;
            }
            "prompt" => {
                let text = args.quoted().ok_or_else(|| self.error("prompt needs a quoted text"))?;
                let condition = self.if_expression(&mut args)?;
                self.end(&args)?;
                self.add_prompt(text, condition, false, location);
            }
            "default" | "def_bool" | "def_tristate" => {
                let value = if kind == MenuKind::Choice {
                    let name = args.word().ok_or_else(|| self.error("a choice default must be a symbol"))?;
                    Expr::Symbol(self.tree.lookup(&name, false))
                } else {
                    self.expression(&mut args)?
                };
                let condition = self.if_expression(&mut args)?;
                self.end(&args)?;
                self.add_property(PropertyKind::Default(value), condition, location);
                if keyword != "default" {
                    self.set_type(entry, type_of(keyword));
                }
            }
            "depends" => {
                if args.next() != Some(&Token::Keyword("on")) {
                    return Err(self.error("expected 'depends on'"));
                }
                let dep = self.expression(&mut args)?;
                self.end(&args)?;
                let menu = self.tree.menu_mut(entry);
                menu.dep = Expr::and_opt(menu.dep.take(), Some(dep));
            }
            "visible" => {
                let condition = self.if_expression(&mut args)?;
                self.end(&args)?;
                let menu = self.tree.menu_mut(entry);
                menu.visibility = Expr::and_opt(menu.visibility.take(), condition);
            }
            "select" | "imply" => {
                let name = args.word().ok_or_else(|| self.error(format!("{keyword} needs a symbol name")))?;
                let target = self.tree.lookup(&name, false);
                let condition = self.if_expression(&mut args)?;
                self.end(&args)?;
                let kind = if keyword == "select" {
                    PropertyKind::Select(target)
                } else {
                    PropertyKind::Imply(target)
                };
                self.add_property(kind, condition, location);
            }
            "range" => {
                let low = self.symbol(&mut args)?;
                let high = self.symbol(&mut args)?;
                let condition = self.if_expression(&mut args)?;
                self.end(&args)?;
                self.add_property(PropertyKind::Range(low, high), condition, location);
            }
            "modules" => {
                self.end(&args)?;
                let symbol = self
                    .tree
                    .menu(entry)
                    .symbol
                    .ok_or_else(|| self.error("modules outside a config entry"))?;
                if let Some(existing) = self.modules {
                    return Err(self.error(format!(
                        "symbol '{}' redefines option 'modules' already defined by symbol '{}'",
                        self.tree.name(symbol),
                        self.tree.name(existing)
                    )));
                }
                self.modules = Some(symbol);
                self.tree.modules = symbol;
            }
            "help" => {
                self.end(&args)?;
                return Ok(After::Help);
            }
            _ => return Err(self.error(format!("'{keyword}' is not an option of this entry"))),
        }
        Ok(After::Nothing)
    }

    /// Checks that the finished entry is complete (choice members: bool with a prompt).
    fn finish_entry(&mut self) -> Result<(), LoadError> {
        let Some(entry) = self.entry.take() else { return Ok(()) };
        let menu = self.tree.menu(entry);
        let fail = |message: &str| LoadError::Syntax {
            file: menu.location.file.clone(),
            line: menu.location.line,
            message: message.into(),
        };
        match menu.kind {
            MenuKind::Choice if menu.prompt.is_none() => return Err(fail("choice must have a prompt")),
            MenuKind::Config => {
                let in_choice = self.blocks.iter().any(|&b| self.tree.menu(b).kind == MenuKind::Choice);
                let symbol = menu.symbol.map(|s| self.tree.sym(s));
                if in_choice && menu.prompt.is_none() {
                    return Err(fail("choice member must have a prompt"));
                }
                if in_choice && symbol.is_some_and(|s| s.kind != SymbolType::Bool) {
                    return Err(fail("choice member must be bool"));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn add_entry(&mut self, kind: MenuKind, symbol: Option<SymbolId>, location: Location) -> MenuId {
        let parent = *self.blocks.last().unwrap_or(&ROOT);
        let id = MenuId(self.tree.menus.len() as u32);
        self.tree.menus.push(Menu {
            kind,
            symbol,
            prompt: None,
            dep: None,
            visibility: None,
            parent: Some(parent),
            children: Vec::new(),
            location,
            members: Vec::new(),
        });
        self.tree.menu_mut(parent).children.push(id);
        if let Some(symbol) = symbol {
            self.tree.sym_mut(symbol).menus.push(id);
        }
        id
    }

    fn add_property(
        &mut self,
        kind: PropertyKind,
        condition: Option<Expr>,
        location: Location,
    ) -> PropertyId {
        let menu = self.entry.unwrap_or(ROOT);
        let id = PropertyId(self.tree.properties.len() as u32);
        self.tree.properties.push(Property { kind, condition, menu, location });
        if let Some(symbol) = self.tree.menu(menu).symbol {
            self.tree.sym_mut(symbol).properties.push(id);
        }
        id
    }

    /// `menu_add_prompt`: the prompt of a config or choice is also hidden by every enclosing
    /// `visible if` (titles of menus and comments are not).
    fn add_prompt(&mut self, text: String, mut condition: Option<Expr>, menu: bool, location: Location) {
        let entry = self.entry.unwrap_or(ROOT);
        if matches!(self.tree.menu(entry).kind, MenuKind::Config | MenuKind::Choice) {
            let mut parent = self.tree.menu(entry).parent;
            while let Some(id) = parent {
                if let Some(visibility) = &self.tree.menu(id).visibility {
                    condition = Expr::and_opt(condition, Some(visibility.clone()));
                }
                parent = self.tree.menu(id).parent;
            }
        }
        let text = text.trim_start().to_owned();
        let id = self.add_property(PropertyKind::Prompt { text, menu }, condition, location);
        self.tree.menu_mut(entry).prompt = Some(id);
    }

    fn set_type(&mut self, entry: MenuId, kind: SymbolType) {
        if let Some(symbol) = self.tree.menu(entry).symbol
            && self.tree.sym(symbol).kind == SymbolType::Unknown
        {
            self.tree.sym_mut(symbol).kind = kind;
        }
    }

    fn end(&self, args: &Arguments<'_>) -> Result<(), LoadError> {
        match args.peek() {
            None => Ok(()),
            Some(token) => Err(self.error(format!("syntax error: unexpected {}", describe(token)))),
        }
    }

    fn if_expression(&mut self, args: &mut Arguments<'_>) -> Result<Option<Expr>, LoadError> {
        if args.peek() == Some(&Token::Keyword("if")) {
            args.next();
            return self.expression(args).map(Some);
        }
        Ok(None)
    }

    fn symbol(&mut self, args: &mut Arguments<'_>) -> Result<SymbolId, LoadError> {
        match args.next() {
            Some(Token::Word(name)) => Ok(self.tree.lookup(name, false)),
            Some(Token::Quoted(text)) => Ok(self.tree.lookup(text, true)),
            Some(token) => {
                Err(self.error(format!("syntax error: expected a symbol, found {}", describe(token))))
            }
            None => Err(self.error("syntax error: expected a symbol at the end of the line")),
        }
    }

    /// `expr` with the precedence `||` < `&&` < `!` < comparisons.
    fn expression(&mut self, args: &mut Arguments<'_>) -> Result<Expr, LoadError> {
        let mut left = self.conjunction(args)?;
        while args.peek() == Some(&Token::Operator("||")) {
            args.next();
            let right = self.conjunction(args)?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn conjunction(&mut self, args: &mut Arguments<'_>) -> Result<Expr, LoadError> {
        let mut left = self.unary(args)?;
        while args.peek() == Some(&Token::Operator("&&")) {
            args.next();
            let right = self.unary(args)?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, args: &mut Arguments<'_>) -> Result<Expr, LoadError> {
        match args.peek() {
            Some(Token::Operator("!")) => {
                args.next();
                Ok(Expr::Not(Box::new(self.unary(args)?)))
            }
            Some(Token::Operator("(")) => {
                args.next();
                let inner = self.expression(args)?;
                match args.next() {
                    Some(Token::Operator(")")) => Ok(inner),
                    _ => Err(self.error("syntax error: missing ')'")),
                }
            }
            _ => {
                let left = self.symbol(args)?;
                let comparison = match args.peek() {
                    Some(Token::Operator("=")) => Comparison::Equal,
                    Some(Token::Operator("!=")) => Comparison::Unequal,
                    Some(Token::Operator("<")) => Comparison::Less,
                    Some(Token::Operator("<=")) => Comparison::LessEqual,
                    Some(Token::Operator(">")) => Comparison::Greater,
                    Some(Token::Operator(">=")) => Comparison::GreaterEqual,
                    _ => return Ok(Expr::Symbol(left)),
                };
                args.next();
                let right = self.symbol(args)?;
                Ok(Expr::Compare(comparison, left, right))
            }
        }
    }
}

/// Tab stops every 8 columns, as the help text rules count them.
fn columns(blanks: &str) -> usize {
    blanks.bytes().fold(0, |ts, b| if b == b'\t' { (ts & !7) + 8 } else { ts + 1 })
}

fn type_of(keyword: &str) -> SymbolType {
    match keyword {
        "bool" | "def_bool" => SymbolType::Bool,
        "tristate" | "def_tristate" => SymbolType::Tristate,
        "int" => SymbolType::Int,
        "hex" => SymbolType::Hex,
        "string" => SymbolType::String,
        _ => SymbolType::Unknown,
    }
}

fn describe(token: &Token) -> String {
    match token {
        Token::Keyword(k) => format!("'{k}'"),
        Token::Word(w) => format!("'{w}'"),
        Token::Quoted(q) => format!("\"{q}\""),
        Token::Operator(o) => format!("'{o}'"),
    }
}

/// The tokens after a statement's keyword.
struct Arguments<'t> {
    tokens: &'t [Token],
    position: usize,
}

impl<'t> Arguments<'t> {
    fn peek(&self) -> Option<&'t Token> {
        self.tokens.get(self.position)
    }

    fn next(&mut self) -> Option<&'t Token> {
        let token = self.tokens.get(self.position);
        self.position += 1;
        token
    }

    fn word(&mut self) -> Option<String> {
        match self.peek() {
            Some(Token::Word(w)) => {
                self.position += 1;
                Some(w.clone())
            }
            _ => None,
        }
    }

    fn quoted(&mut self) -> Option<String> {
        match self.peek() {
            Some(Token::Quoted(q)) => {
                self.position += 1;
                Some(q.clone())
            }
            _ => None,
        }
    }
}
