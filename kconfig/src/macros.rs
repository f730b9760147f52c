//! The Kconfig macro language (`scripts/kconfig/preprocess.c`): variables (`=`, `:=`, `+=`),
//! parameterised calls `$(name,arg,…)` with `$(1)`…, the built-in functions `shell`, `info`,
//! `warning-if`, `error-if`, `filename` and `lineno`, and the environment as the last resort.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;

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

#[derive(Clone)]
struct Variable {
    value: Expansion,
    recursive: bool,
    expanding: usize,
    /// While probes are collected, a `:=` whose value holds placeholders: expanded again at
    /// each use, as it would have been where it was assigned, until its probes have run.
    deferred: Option<Rc<Deferred>>,
}

/// The variables by name; shared by the snapshots deferred work keeps, copied on write.
type Variables = Rc<HashMap<String, Variable>>;

/// What a deferred expansion is made from again: its text and the variables as they were.
struct Deferred {
    source: String,
    variables: Variables,
    /// Where it was assigned, for `$(filename)` and `$(lineno)` in it.
    file: PathBuf,
    line: usize,
}

/// While probes are collected, a call whose command was built from placeholders: made again
/// once the probes it waits for have run, so the command it builds then starts early.
struct Retry {
    clause: String,
    args: Vec<Expansion>,
    variables: Variables,
    file: PathBuf,
    line: usize,
    pending: Vec<String>,
    /// How many times it was made again before: a call that keeps being blocked (by output
    /// that cannot change, such as a caller's argument) is given up on.
    round: u32,
}

/// Rounds a blocked call is made again at most; the Linux tree needs three.
const RETRY_ROUNDS: u32 = 8;

/// The output a probe still running in the background stands for while probes are collected:
/// a word every use of a probe accepts.
const PLACEHOLDER: &str = "n";

/// Expanded text, with the probe commands still running in the background whose
/// [`PLACEHOLDER`] it holds (none unless probes are being collected).
#[derive(Debug, Clone, Default)]
struct Expansion {
    text: String,
    pending: Vec<String>,
    /// A `$(shell,…)` in it was not run: its command was built from placeholders.
    blocked: bool,
}

impl Expansion {
    fn plain(text: String) -> Expansion {
        Expansion { text, pending: Vec::new(), blocked: false }
    }

    fn push(&mut self, other: &Expansion) {
        self.text.push_str(&other.text);
        self.pending.extend(other.pending.iter().cloned());
        self.blocked |= other.blocked;
    }

    /// Marks this as built from what `other` was built from as well.
    fn depending_on(mut self, other: &Expansion) -> Expansion {
        self.pending.extend(other.pending.iter().cloned());
        self.blocked |= other.blocked;
        self
    }
}

/// At most this many arguments in one call.
const MAX_ARGUMENTS: usize = 16;

/// Expands macros while a tree is read; knows the current file and line for errors.
pub(crate) struct Preprocessor<'e> {
    variables: Variables,
    /// Calls to make again (only while probes are collected).
    retries: Vec<Retry>,
    /// The round of the call being made again, if one is.
    retry_round: u32,
    /// Probes the words and strings expanded since [`Preprocessor::take_token_pending`] wait for.
    token_pending: Vec<String>,
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
            variables: Rc::new(HashMap::new()),
            retries: Vec::new(),
            retry_round: 0,
            token_pending: Vec::new(),
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
        let mut deferred = None;
        let value = if recursive {
            Expansion::plain(value.to_owned())
        } else if append {
            // Appended to what the variable holds now: both must be real output.
            self.settle(name)?;
            let mut expansion = [self.expand_string(value, &[])?];
            let mut waited = BTreeSet::new();
            while self.redo(&mut expansion, &[value], &mut waited)? {}
            let [expansion] = expansion;
            expansion
        } else {
            let expansion = self.expand_string(value, &[])?;
            if !expansion.pending.is_empty() {
                deferred = Some(Rc::new(Deferred {
                    source: value.to_owned(),
                    variables: Rc::clone(&self.variables),
                    file: self.file.clone(),
                    line: self.line,
                }));
            }
            expansion
        };
        let variable = Rc::make_mut(&mut self.variables).entry(name.to_owned()).or_insert(Variable {
            value: Expansion::default(),
            recursive,
            expanding: 0,
            deferred: None,
        });
        variable.recursive = recursive;
        if append {
            variable.value.text.push(' ');
            variable.value.push(&value);
        } else {
            variable.value = value;
            variable.deferred = deferred;
        }
        Ok(())
    }

    /// Whether `source` may only name files below the source tree.
    pub(crate) fn confined(&self) -> bool {
        self.environment.is_confined()
    }

    /// Whether probes are being collected (a first pass).
    pub(crate) fn collecting(&self) -> bool {
        self.environment.probes().is_collecting()
    }

    /// The probes the words and strings expanded since the last call wait for.
    pub(crate) fn take_token_pending(&mut self) -> Vec<String> {
        std::mem::take(&mut self.token_pending)
    }

    /// Waits until `commands` have run.
    pub(crate) fn wait_for(&self, commands: &[String]) {
        self.environment.probes().wait(commands);
    }

    /// Waits until a deferred variable's probes have run and gives it its real value.
    fn settle(&mut self, name: &str) -> Result<(), LoadError> {
        let mut waited = BTreeSet::new();
        while self.variables.get(name).is_some_and(|v| v.deferred.is_some()) {
            let Some(value) = self.expand_variable(name, &[])? else { break };
            let fresh: Vec<String> = value.pending.iter().filter(|c| !waited.contains(*c)).cloned().collect();
            if fresh.is_empty() {
                break;
            }
            self.environment.probes().wait(&fresh);
            waited.extend(fresh);
        }
        Ok(())
    }

    /// While probes are collected: makes again the calls whose probes have run (all of them
    /// when `wait`, after waiting), so the commands they build start as early as they can.
    pub(crate) fn retry(&mut self, wait: bool) {
        while !self.retries.is_empty() {
            let retries = std::mem::take(&mut self.retries);
            let (ready, later): (Vec<Retry>, Vec<Retry>) = if wait {
                let pending: Vec<String> = retries.iter().flat_map(|r| r.pending.iter().cloned()).collect();
                self.environment.probes().wait(&pending);
                (retries, Vec::new())
            } else {
                retries.into_iter().partition(|r| self.environment.probes().finished(&r.pending))
            };
            self.retries = later;
            if ready.is_empty() {
                return;
            }
            let (file, line) = (self.file.clone(), self.line);
            for retry in ready.into_iter().filter(|retry| retry.round < RETRY_ROUNDS) {
                let current = std::mem::replace(&mut self.variables, retry.variables);
                (self.file, self.line, self.retry_round) = (retry.file, retry.line, retry.round + 1);
                // Only the probes it starts count; an error shows again in the real pass.
                let _ = self.eval_clause(&retry.clause, &retry.args);
                self.variables = current;
            }
            (self.file, self.line, self.retry_round) = (file, line, 0);
        }
    }

    /// Expands every reference in `input`.
    fn expand_string(&mut self, input: &str, args: &[Expansion]) -> Result<Expansion, LoadError> {
        Ok(self.expand(input, args, |_| false)?.0)
    }

    /// Expands one unquoted word starting at `input`: references and the word characters
    /// around them. Returns the expansion and the bytes consumed.
    pub(crate) fn expand_token(&mut self, input: &str) -> Result<(String, usize), LoadError> {
        let (expansion, used) =
            self.expand(input, &[], |c| !(c.is_ascii_alphanumeric() || c == b'_' || c == b'-'))?;
        self.token_pending.extend(expansion.pending);
        Ok((expansion.text, used))
    }

    /// Expands the reference after a `$` inside a quoted string. Returns the expansion and the
    /// bytes consumed.
    pub(crate) fn expand_dollar_in_string(
        &mut self,
        after_dollar: &str,
    ) -> Result<(String, usize), LoadError> {
        let (expansion, used) = self.expand_dollar(after_dollar, &[])?;
        self.token_pending.extend(expansion.pending);
        Ok((expansion.text, used))
    }

    fn expand(
        &mut self,
        input: &str,
        args: &[Expansion],
        is_end: fn(u8) -> bool,
    ) -> Result<(Expansion, usize), LoadError> {
        let bytes = input.as_bytes();
        let mut out = Expansion::default();
        let (mut start, mut p) = (0, 0);
        while p < bytes.len() {
            if bytes[p] == b'$' {
                out.text.push_str(&input[start..p]);
                let (expansion, used) = self.expand_dollar(&input[p + 1..], args)?;
                out.push(&expansion);
                p += 1 + used;
                start = p;
                continue;
            }
            if is_end(bytes[p]) {
                break;
            }
            p += 1;
        }
        out.text.push_str(&input[start..p]);
        Ok((out, p))
    }

    /// `input` follows a `$`: `(…)` is a reference, anything else leaves the `$` as it is.
    fn expand_dollar(&mut self, input: &str, args: &[Expansion]) -> Result<(Expansion, usize), LoadError> {
        let Some(inner) = input.strip_prefix('(') else { return Ok((Expansion::plain("$".into()), 0)) };
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

    fn eval_clause(&mut self, clause: &str, args: &[Expansion]) -> Result<Expansion, LoadError> {
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
        if !name.pending.is_empty() {
            // Which function or variable this is depends on a running probe: not called yet.
            let value =
                Expansion { text: PLACEHOLDER.to_owned(), pending: name.pending.clone(), blocked: true };
            self.defer_call(clause, args, &value);
            return Ok(value);
        }
        let value = self.call(&name.text, &call_args)?;
        self.defer_call(clause, args, &value);
        Ok(value.depending_on(&name))
    }

    /// Records `clause` (called with `args`) to be made again if its value is `blocked`.
    fn defer_call(&mut self, clause: &str, args: &[Expansion], value: &Expansion) {
        // A command built from placeholders: made again once its probes have run, here if
        // what it is built from can be expanded again here (not from the caller's arguments).
        if value.blocked && args.iter().all(|arg| arg.pending.is_empty()) {
            self.retries.push(Retry {
                clause: clause.to_owned(),
                args: args.to_vec(),
                variables: Rc::clone(&self.variables),
                file: self.file.clone(),
                line: self.line,
                pending: value.pending.clone(),
                round: self.retry_round,
            });
        }
    }

    /// A variable, a built-in function or the environment.
    fn call(&mut self, name: &str, args: &[Expansion]) -> Result<Expansion, LoadError> {
        if let Some(value) = self.expand_variable(name, args)? {
            return Ok(value);
        }
        if let Some(value) = self.call_builtin(name, args)? {
            return Ok(value);
        }
        if args.is_empty()
            && !name.is_empty()
            && let Some(value) = self.environment.get(name)
        {
            return Ok(Expansion::plain(value.to_owned()));
        }
        Ok(Expansion::default())
    }

    /// While probes are collected: waits for the probes whose placeholders `expansions` (of
    /// `sources`) hold, unless `waited` for them already, and expands `sources` again. Whether
    /// there were any to wait for.
    fn redo(
        &mut self,
        expansions: &mut [Expansion],
        sources: &[&str],
        waited: &mut BTreeSet<String>,
    ) -> Result<bool, LoadError> {
        let fresh: Vec<String> =
            expansions.iter().flat_map(|e| &e.pending).filter(|c| !waited.contains(*c)).cloned().collect();
        if fresh.is_empty() {
            return Ok(false);
        }
        self.environment.probes().wait(&fresh);
        waited.extend(fresh);
        for (expansion, source) in expansions.iter_mut().zip(sources) {
            *expansion = self.expand_string(source, &[])?;
        }
        Ok(true)
    }

    fn expand_variable(&mut self, name: &str, args: &[Expansion]) -> Result<Option<Expansion>, LoadError> {
        if let Some(deferred) = self.variables.get(name).and_then(|v| v.deferred.clone()) {
            let current = std::mem::replace(&mut self.variables, Rc::clone(&deferred.variables));
            let here = (std::mem::replace(&mut self.file, deferred.file.clone()), self.line);
            self.line = deferred.line;
            let result = self.expand_string(&deferred.source, &[]);
            (self.variables, self.file, self.line) = (current, here.0, here.1);
            let value = result?;
            if value.pending.is_empty()
                && let Some(variable) = Rc::make_mut(&mut self.variables).get_mut(name)
            {
                variable.value = value.clone();
                variable.deferred = None;
            }
            return Ok(Some(value));
        }
        let Some(variable) = Rc::make_mut(&mut self.variables).get_mut(name) else { return Ok(None) };
        if args.is_empty() && variable.expanding > 0 {
            return Err(self.error(format!("Recursive variable '{name}' references itself (eventually)")));
        }
        if variable.expanding > 1000 {
            return Err(self.error("Too deep recursive expansion".into()));
        }
        variable.expanding += 1;
        let (value, recursive) = (variable.value.clone(), variable.recursive);
        let result = if recursive { self.expand_string(&value.text, args) } else { Ok(value) };
        if let Some(variable) = Rc::make_mut(&mut self.variables).get_mut(name) {
            variable.expanding -= 1;
        }
        result.map(Some)
    }

    fn call_builtin(&mut self, name: &str, args: &[Expansion]) -> Result<Option<Expansion>, LoadError> {
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
            // While probes are collected, a condition built from a placeholder is left to the
            // real pass.
            "error-if" | "warning-if" if !args[0].pending.is_empty() => String::new(),
            "error-if" if args[0].text == "y" => return Err(self.error(args[1].text.clone())),
            "warning-if" if args[0].text == "y" => {
                self.messages.push(format!("{}:{}: {}", self.file.display(), self.line, args[1].text));
                String::new()
            }
            "info" => {
                self.messages.push(args[0].text.clone());
                String::new()
            }
            "filename" => self.file.display().to_string(),
            "lineno" => self.line.to_string(),
            "shell" => return self.shell(&args[0]).map(Some),
            _ => String::new(),
        };
        Ok(Some(Expansion::plain(value)))
    }

    /// `$(shell,command)`: the probe's output, or while probes are collected and it is still
    /// running, the placeholder.
    fn shell(&mut self, command: &Expansion) -> Result<Expansion, LoadError> {
        if !command.pending.is_empty() {
            // Built from placeholders: not a command the tree runs.
            return Ok(Expansion {
                text: PLACEHOLDER.to_owned(),
                pending: command.pending.clone(),
                blocked: true,
            });
        }
        let command = command.text.as_str();
        let variables = self.environment.variables().clone();
        let (file, line) = (self.file.clone(), self.line);
        let output = environment::run_probe(
            self.environment.probes_mut(),
            command,
            &variables,
            &self.scratch,
            &file,
            line,
        )?;
        Ok(match output {
            Some(text) => Expansion::plain(text),
            None => {
                Expansion { text: PLACEHOLDER.to_owned(), pending: vec![command.to_owned()], blocked: false }
            }
        })
    }
}
