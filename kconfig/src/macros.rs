//! The Kconfig macro language (`scripts/kconfig/preprocess.c`): variables (`=`, `:=`, `+=`),
//! parameterised calls `$(name,arg,…)` with `$(1)`…, the built-in functions `shell`, `info`,
//! `warning-if`, `error-if`, `filename` and `lineno`, and the environment as the last resort.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::environment::{self, Environment};
use crate::error::LoadError;

/// How an assignment binds its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// `=`: expanded at each use.
    Recursive,
    /// `:=`: expanded once, now.
    Simple,
    /// `+=`: appended, keeping the variable's flavor.
    Append,
}

struct Variable {
    value: String,
    recursive: bool,
    expanding: usize,
}

/// At most this many arguments in one call.
const MAX_ARGUMENTS: usize = 16;

/// Expands macros while a tree is read; knows the current file and line for errors.
pub(crate) struct Preprocessor<'e> {
    variables: HashMap<String, Variable>,
    environment: &'e mut Environment,
    scratch: PathBuf,
    pub(crate) file: PathBuf,
    pub(crate) line: usize,
    /// Output of `$(info,…)` and fired `$(warning-if,…)`, with their locations.
    pub(crate) messages: Vec<String>,
}

impl<'e> Preprocessor<'e> {
    pub(crate) fn new(environment: &'e mut Environment, scratch: &Path) -> Preprocessor<'e> {
        Preprocessor {
            variables: HashMap::new(),
            environment,
            scratch: scratch.to_owned(),
            file: PathBuf::new(),
            line: 0,
            messages: Vec::new(),
        }
    }

    fn error(&self, message: String) -> LoadError {
        LoadError::Macro { file: self.file.clone(), line: self.line, message }
    }

    /// `NAME op VALUE`.
    pub(crate) fn assign(&mut self, name: &str, value: &str, flavor: Flavor) -> Result<(), LoadError> {
        let (recursive, append) = match (self.variables.get(name), flavor) {
            (Some(existing), Flavor::Append) => (existing.recursive, true),
            (None, Flavor::Append) | (_, Flavor::Recursive) => (true, false),
            (_, Flavor::Simple) => (false, false),
        };
        let value = if recursive { value.to_owned() } else { self.expand_string(value, &[])? };
        let variable = self.variables.entry(name.to_owned()).or_insert(Variable {
            value: String::new(),
            recursive,
            expanding: 0,
        });
        variable.recursive = recursive;
        if append {
            variable.value.push(' ');
            variable.value.push_str(&value);
        } else {
            variable.value = value;
        }
        Ok(())
    }

    /// Expands every reference in `input`.
    pub(crate) fn expand_string(&mut self, input: &str, args: &[String]) -> Result<String, LoadError> {
        Ok(self.expand(input, args, |_| false)?.0)
    }

    /// Expands one unquoted word starting at `input`: references and the word characters
    /// around them. Returns the expansion and the bytes consumed.
    pub(crate) fn expand_token(&mut self, input: &str) -> Result<(String, usize), LoadError> {
        self.expand(input, &[], |c| !(c.is_ascii_alphanumeric() || c == b'_' || c == b'-'))
    }

    /// Expands the reference after a `$` inside a quoted string. Returns the expansion and the
    /// bytes consumed.
    pub(crate) fn expand_dollar_in_string(
        &mut self,
        after_dollar: &str,
    ) -> Result<(String, usize), LoadError> {
        self.expand_dollar(after_dollar, &[])
    }

    fn expand(
        &mut self,
        input: &str,
        args: &[String],
        is_end: fn(u8) -> bool,
    ) -> Result<(String, usize), LoadError> {
        let bytes = input.as_bytes();
        let mut out = String::new();
        let (mut start, mut p) = (0, 0);
        while p < bytes.len() {
            if bytes[p] == b'$' {
                out.push_str(&input[start..p]);
                let (expansion, used) = self.expand_dollar(&input[p + 1..], args)?;
                out.push_str(&expansion);
                p += 1 + used;
                start = p;
                continue;
            }
            if is_end(bytes[p]) {
                break;
            }
            p += 1;
        }
        out.push_str(&input[start..p]);
        Ok((out, p))
    }

    /// `input` follows a `$`: `(…)` is a reference, anything else leaves the `$` as it is.
    fn expand_dollar(&mut self, input: &str, args: &[String]) -> Result<(String, usize), LoadError> {
        let Some(inner) = input.strip_prefix('(') else { return Ok(("$".into(), 0)) };
        let mut nest = 0usize;
        for (i, c) in inner.bytes().enumerate() {
            match c {
                b'(' => nest += 1,
                b')' if nest == 0 => {
                    let value = self.eval_clause(&inner[..i], args)?;
                    return Ok((value, i + 2));
                }
                b')' => nest -= 1,
                _ => {}
            }
        }
        Err(self.error(format!("unterminated reference to '{inner}': missing ')'")))
    }

    fn eval_clause(&mut self, clause: &str, args: &[String]) -> Result<String, LoadError> {
        if let Ok(n) = clause.parse::<usize>()
            && n > 0
            && n <= args.len()
            && clause.bytes().all(|b| b.is_ascii_digit())
        {
            return Ok(args[n - 1].clone());
        }
        let mut parts = Vec::new();
        let (mut nest, mut start) = (0i32, 0);
        for (i, c) in clause.bytes().enumerate() {
            match c {
                b',' if nest == 0 => {
                    parts.push(&clause[start..i]);
                    start = i + 1;
                }
                b'(' => nest += 1,
                b')' => nest -= 1,
                _ => {}
            }
        }
        parts.push(&clause[start..]);
        if parts.len() > MAX_ARGUMENTS {
            return Err(self.error("too many function arguments".into()));
        }
        let name = self.expand_string(parts[0], args)?;
        let mut call_args = Vec::with_capacity(parts.len() - 1);
        for part in &parts[1..] {
            call_args.push(self.expand_string(part, args)?);
        }
        if let Some(value) = self.expand_variable(&name, &call_args)? {
            return Ok(value);
        }
        if let Some(value) = self.call_builtin(&name, &call_args)? {
            return Ok(value);
        }
        if call_args.is_empty()
            && !name.is_empty()
            && let Some(value) = self.environment.get(&name)
        {
            return Ok(value.to_owned());
        }
        Ok(String::new())
    }

    fn expand_variable(&mut self, name: &str, args: &[String]) -> Result<Option<String>, LoadError> {
        let Some(variable) = self.variables.get_mut(name) else { return Ok(None) };
        if args.is_empty() && variable.expanding > 0 {
            return Err(self.error(format!("Recursive variable '{name}' references itself (eventually)")));
        }
        if variable.expanding > 1000 {
            return Err(self.error("Too deep recursive expansion".into()));
        }
        variable.expanding += 1;
        let (value, recursive) = (variable.value.clone(), variable.recursive);
        let result = if recursive { self.expand_string(&value, args) } else { Ok(value) };
        if let Some(variable) = self.variables.get_mut(name) {
            variable.expanding -= 1;
        }
        result.map(Some)
    }

    fn call_builtin(&mut self, name: &str, args: &[String]) -> Result<Option<String>, LoadError> {
        let arity = match name {
            "error-if" | "warning-if" => 2,
            "info" | "shell" => 1,
            "filename" | "lineno" => 0,
            _ => return Ok(None),
        };
        if args.len() < arity {
            return Err(self.error(format!("too few function arguments passed to '{name}'")));
        }
        if args.len() > arity {
            return Err(self.error(format!("too many function arguments passed to '{name}'")));
        }
        let value = match name {
            "error-if" if args[0] == "y" => return Err(self.error(args[1].clone())),
            "warning-if" if args[0] == "y" => {
                self.messages.push(format!("{}:{}: {}", self.file.display(), self.line, args[1]));
                String::new()
            }
            "info" => {
                self.messages.push(args[0].clone());
                String::new()
            }
            "filename" => self.file.display().to_string(),
            "lineno" => self.line.to_string(),
            "shell" => {
                let variables = self.environment.variables().clone();
                let (file, line) = (self.file.clone(), self.line);
                environment::run_probe(
                    self.environment.probes_mut(),
                    &args[0],
                    &variables,
                    &self.scratch,
                    &file,
                    line,
                )?
            }
            _ => String::new(),
        };
        Ok(Some(value))
    }
}
