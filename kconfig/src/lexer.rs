//! Tokens of one Kconfig line (`scripts/kconfig/lexer.l`), with macros expanded as they are
//! met: an unquoted word containing `$` becomes one word, and `$(…)` inside a string is
//! replaced in place.

use crate::error::LoadError;
use crate::macros::Preprocessor;

/// A token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    /// A reserved word.
    Keyword(&'static str),
    /// A word (`[A-Za-z0-9_-]+`, or the expansion of one containing `$`).
    Word(String),
    /// A quoted string, unescaped and expanded.
    Quoted(String),
    /// An operator: `|| && = != < <= > >= ! ( ) := +=`.
    Operator(&'static str),
}

const KEYWORDS: [&str; 28] = [
    "bool",
    "choice",
    "comment",
    "config",
    "def_bool",
    "def_tristate",
    "default",
    "depends",
    "endchoice",
    "endif",
    "endmenu",
    "help",
    "hex",
    "if",
    "imply",
    "int",
    "mainmenu",
    "menu",
    "menuconfig",
    "modules",
    "on",
    "prompt",
    "range",
    "select",
    "source",
    "string",
    "tristate",
    "visible",
];

const OPERATORS: [&str; 13] = ["||", "&&", "!=", "<=", ">=", ":=", "+=", "=", "<", ">", "!", "(", ")"];

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

/// Reads the tokens of one logical line.
pub(crate) struct Lexer<'l> {
    line: &'l str,
    position: usize,
}

impl<'l> Lexer<'l> {
    pub(crate) fn new(line: &'l str) -> Lexer<'l> {
        Lexer { line, position: 0 }
    }

    /// What is left of the line after blanks (the value of an assignment, kept raw).
    pub(crate) fn rest(&mut self) -> &'l str {
        let rest = self.line[self.position..].trim_start_matches([' ', '\t']);
        self.position = self.line.len();
        rest
    }

    /// The next token, `None` at the end of the line (or at a `#` comment).
    pub(crate) fn next(&mut self, macros: &mut Preprocessor<'_>) -> Result<Option<Token>, LoadError> {
        loop {
            let bytes = self.line.as_bytes();
            while self.position < bytes.len() && matches!(bytes[self.position], b' ' | b'\t' | b'\r') {
                self.position += 1;
            }
            let Some(&c) = bytes.get(self.position) else { return Ok(None) };
            let rest = &self.line[self.position..];
            match c {
                b'#' => {
                    self.position = bytes.len();
                    return Ok(None);
                }
                b'"' | b'\'' => return self.quoted(c, macros).map(Some),
                c if is_word_byte(c) || c == b'$' => {
                    let length = rest.bytes().take_while(|&b| is_word_byte(b) || b == b'$').count();
                    let word = &rest[..length];
                    if !word.contains('$') {
                        self.position += length;
                        return Ok(Some(match KEYWORDS.iter().find(|k| **k == word) {
                            Some(keyword) => Token::Keyword(keyword),
                            None => Token::Word(word.to_owned()),
                        }));
                    }
                    let (expanded, used) = macros.expand_token(rest)?;
                    self.position += used.max(1);
                    if !expanded.is_empty() {
                        return Ok(Some(Token::Word(expanded)));
                    }
                }
                _ => {
                    if let Some(operator) = OPERATORS.iter().find(|op| rest.starts_with(**op)) {
                        self.position += operator.len();
                        return Ok(Some(Token::Operator(operator)));
                    }
                    let ignored = rest.chars().next().unwrap_or(' ');
                    macros.messages.push(format!(
                        "{}:{}: warning: ignoring unsupported character '{ignored}'",
                        macros.file.display(),
                        macros.line
                    ));
                    self.position += ignored.len_utf8();
                }
            }
        }
    }

    fn quoted(&mut self, quote: u8, macros: &mut Preprocessor<'_>) -> Result<Token, LoadError> {
        let mut text = String::new();
        self.position += 1;
        loop {
            let rest = &self.line[self.position..];
            let Some(c) = rest.chars().next() else {
                return Err(LoadError::Syntax {
                    file: macros.file.clone(),
                    line: macros.line,
                    message: "unterminated string (multi-line strings are not supported)".into(),
                });
            };
            self.position += c.len_utf8();
            match c {
                '$' => {
                    let (expanded, used) = macros.expand_dollar_in_string(&self.line[self.position..])?;
                    text.push_str(&expanded);
                    self.position += used;
                }
                '\\' => {
                    if let Some(next) = self.line[self.position..].chars().next() {
                        text.push(next);
                        self.position += next.len_utf8();
                    }
                }
                c if c as u32 == u32::from(quote) => return Ok(Token::Quoted(text)),
                c => text.push(c),
            }
        }
    }
}
