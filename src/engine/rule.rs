//! Loading rule files: compile once, read metadata, merge parameters.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rhai::{AST, ASTNode, Dynamic, Engine, Expr, ImmutableString, Map, Position, Scope};

use super::config::RulesConfig;
use super::diagnostics::{Diagnostic, did_you_mean};
use super::finding::Severity;
use super::native::{NativeCheck, NativeLimits};
use super::params::Params;
use super::sandbox::{parse_as_written, row_property_names};
use super::tenant::summary_property_names;

/// One compiled rule.
#[derive(Clone)]
pub struct Rule {
    /// The rule's `ID`, or its file name without `.rhai`; unique in a
    /// rule set, and the first part of its findings' keys.
    pub id: Arc<str>,
    /// The rule's `TITLE` (default: the id); the message of a finding
    /// the script reports as just `true`.
    pub title: String,
    /// The rule's `SEVERITY` (default: medium), which its findings have
    /// unless the script gives another.
    pub severity: Severity,
    /// The rule's `DESCRIPTION`; empty when it has none.
    pub description: String,
    /// The rule's `HELP`: a paragraph for the people who get its findings
    /// (group owners): why it matters and what to do. Empty when it has
    /// none.
    pub help: String,
    /// The `.rhai` file the rule was compiled from.
    pub path: PathBuf,
    /// The text of that file, for the source lines of diagnostics.
    pub source: Arc<str>,
    /// `PARAMS` as the rule declares them.
    pub defaults: Map,
    /// The parameters in force: defaults with the config's overrides.
    pub params: Params,
    /// Names of parameters the config overrode.
    pub overridden: Vec<String>,
    /// The compiled script, with top-level constants folded into its
    /// functions.
    pub ast: Arc<AST>,
    /// Arity of `check` (1: `check(row)`, 2: `check(row, params)`), if defined.
    pub check_arity: Option<usize>,
    /// Arity of `tenant`, if defined.
    pub tenant_arity: Option<usize>,
    /// Row properties the rule reads, shown as evidence with its findings.
    pub evidence_fields: Vec<&'static str>,
    /// `false` when the config lists the rule in `[rules] disabled`.
    pub enabled: bool,
    /// `check` compiled for the fast path with the parameters in force,
    /// once for the rule set and shared by every worker; `Err` says why it
    /// runs in the interpreter.
    pub native: Result<Arc<NativeCheck>, String>,
    /// The limits of the engine that compiled the rule, for compiling
    /// `native` again when the parameters change.
    native_limits: NativeLimits,
    /// Every how many report lines the fast path's answer is checked in
    /// the interpreter (`[rules] verify_fast_path`); 0: never.
    pub verify_fast_path_every: u64,
}

/// What people who get a rule's findings read about it: its `TITLE` and
/// its `HELP`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuleText {
    /// The rule's `TITLE`.
    pub title: String,
    /// The rule's `HELP`; empty when it has none.
    #[serde(default)]
    pub help: String,
}

impl Rule {
    /// The rule's title and help, for messages about its findings.
    pub fn text(&self) -> RuleText {
        RuleText {
            title: self.title.clone(),
            help: self.help.clone(),
        }
    }
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rule")
            .field("id", &self.id)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Loading the rules failed; nothing was scanned.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// The rules folder or a rule file could not be read.
    #[error("cannot read rules from {path}: {error}")]
    Io {
        /// The folder or file.
        path: PathBuf,
        /// Why reading it failed.
        error: std::io::Error,
    },
    /// The rules folder holds no `*.rhai` file.
    #[error("no rules (*.rhai) in {0}")]
    NoRules(PathBuf),
    /// One or more rules did not compile (or two share an id): every
    /// error of every file, so one run shows them all.
    #[error("{}", .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n\n"))]
    Compile(Vec<Diagnostic>),
    /// The `[rules]` configuration names an unknown rule or parameter, or
    /// gives a parameter a value of the wrong type.
    #[error("config key `{key}`: {message}")]
    Config {
        /// The key at fault, such as `rules.params.inactive-groups.days`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

/// The rules of one folder.
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    /// All rules, sorted by id; disabled ones have `enabled == false`.
    pub rules: Vec<Rule>,
}

impl RuleSet {
    /// Compiles every `*.rhai` file in `dir`. All compile errors are
    /// collected before failing, so one run shows them all.
    pub fn load(engine: &Engine, dir: &Path, config: &RulesConfig) -> Result<RuleSet, RuleError> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|error| RuleError::Io {
                path: dir.to_owned(),
                error,
            })?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(RuleError::NoRules(dir.to_owned()));
        }
        let mut rules = Vec::new();
        let mut diagnostics = Vec::new();
        for path in paths {
            let source = std::fs::read_to_string(&path).map_err(|error| RuleError::Io {
                path: path.clone(),
                error,
            })?;
            match compile_rule(engine, &path, &source) {
                Ok(rule) => rules.push(rule),
                Err(mut errors) => diagnostics.append(&mut errors),
            }
        }
        if !diagnostics.is_empty() {
            return Err(RuleError::Compile(diagnostics));
        }
        Self::from_rules(rules, config)
    }

    /// Applies the config (disabled rules, parameter overrides) to
    /// compiled rules.
    pub fn from_rules(mut rules: Vec<Rule>, config: &RulesConfig) -> Result<RuleSet, RuleError> {
        rules.sort_by(|a, b| a.id.cmp(&b.id));
        if let Some(pair) = rules.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(RuleError::Compile(vec![Diagnostic::at(
                &pair[1].path,
                "",
                0,
                0,
                format!(
                    "rule id `{}` is also used by {}",
                    pair[1].id,
                    pair[0].path.display()
                ),
            )]));
        }
        let ids: Vec<String> = rules.iter().map(|r| r.id.to_string()).collect();
        let unknown_rule = |key: String, id: &str| RuleError::Config {
            message: format!(
                "no rule `{id}` in the rules folder{}",
                did_you_mean(id, ids.iter().map(String::as_str))
                    .map(|h| format!("; did you mean `{h}`?"))
                    .unwrap_or_default()
            ),
            key,
        };
        for rule in &mut rules {
            rule.verify_fast_path_every = config.verify_fast_path_every();
        }
        for (index, id) in config.disabled.iter().enumerate() {
            let rule = rules
                .iter_mut()
                .find(|r| &*r.id == id)
                .ok_or_else(|| unknown_rule(format!("rules.disabled[{index}]"), id))?;
            rule.enabled = false;
        }
        for (id, overrides) in &config.params {
            let rule = rules
                .iter_mut()
                .find(|r| &*r.id == id)
                .ok_or_else(|| unknown_rule(format!("rules.params.{id}"), id))?;
            rule.apply_overrides(overrides)?;
        }
        Ok(RuleSet { rules })
    }

    /// The rules that run.
    pub fn enabled(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(|r| r.enabled)
    }

    /// The rule with this id, enabled or not.
    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| &*r.id == id)
    }
}

impl Rule {
    /// Replaces defaults with config values, checking names and types.
    pub fn apply_overrides(&mut self, overrides: &toml::Table) -> Result<(), RuleError> {
        let mut params = (*self.params.0).clone();
        for (name, value) in overrides {
            let key = format!("rules.params.{}.{name}", self.id);
            let Some(default) = self.defaults.get(name.as_str()) else {
                let known: Vec<&str> = self.defaults.keys().map(|k| k.as_str()).collect();
                let hint = did_you_mean(name, known.iter().copied())
                    .map(|h| format!("; did you mean `{h}`?"))
                    .unwrap_or_default();
                let list = if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                };
                return Err(RuleError::Config {
                    key,
                    message: format!(
                        "rule `{}` has no parameter `{name}` (it has: {list}){hint}",
                        self.id
                    ),
                });
            };
            let value = toml_to_dynamic(value);
            if !same_kind(default, &value) {
                return Err(RuleError::Config {
                    key,
                    message: format!(
                        "expected {} like the default `{default}`, found {}",
                        kind_name(default),
                        kind_name(&value)
                    ),
                });
            }
            params.insert(name.as_str().into(), value);
            self.overridden.push(name.clone());
        }
        self.params = Params(Arc::new(params));
        self.compile_native();
        Ok(())
    }

    /// Compiles [`Rule::native`] for the parameters in force.
    fn compile_native(&mut self) {
        self.native = NativeCheck::compile_with(self.native_limits, self).map(Arc::new);
    }
}

/// The type of a value in the words of the docs.
pub fn kind_name(value: &Dynamic) -> &'static str {
    if value.is_unit() {
        "()"
    } else if value.is_int() {
        "int"
    } else if value.is_float() {
        "float"
    } else if value.is_bool() {
        "bool"
    } else if value.is_string() {
        "string"
    } else if value.is_array() {
        "array"
    } else if value.is_map() {
        "map"
    } else {
        "value"
    }
}

fn same_kind(default: &Dynamic, value: &Dynamic) -> bool {
    default.is_unit()
        || default.type_id() == value.type_id()
        || (default.is_float() && value.is_int())
}

/// Converts a TOML value to what a script sees.
pub fn toml_to_dynamic(value: &toml::Value) -> Dynamic {
    match value {
        toml::Value::String(s) => s.clone().into(),
        toml::Value::Integer(i) => Dynamic::from_int(*i),
        toml::Value::Float(f) => Dynamic::from_float(*f),
        toml::Value::Boolean(b) => Dynamic::from_bool(*b),
        toml::Value::Datetime(d) => d.to_string().into(),
        toml::Value::Array(items) => {
            Dynamic::from_array(items.iter().map(toml_to_dynamic).collect())
        }
        toml::Value::Table(table) => Dynamic::from_map(
            table
                .iter()
                .map(|(k, v)| (k.as_str().into(), toml_to_dynamic(v)))
                .collect(),
        ),
    }
}

/// Compiles one rule file and reads its metadata by running its top level
/// once in the sandbox.
pub fn compile_rule(engine: &Engine, path: &Path, source: &str) -> Result<Rule, Vec<Diagnostic>> {
    let ast = parse(engine, path, source)?;
    let scope = run_top_level(engine, path, source, &ast)?;
    let mut errors = Vec::new();
    let metadata = read_metadata(&scope, path, source, &mut errors);
    let (check_arity, tenant_arity) = entry_points(&ast, path, source, &mut errors);
    let written =
        parse_as_written(source).map_err(|e| vec![Diagnostic::from_parse(path, source, &e)])?;
    let row_param = first_param(&written, "check");
    let evidence_fields = row_fields(&written, row_param.as_deref(), path, source, &mut errors);
    check_summary_accesses(&written, path, source, row_param.as_deref(), &mut errors);
    check_param_accesses(&written, &metadata.defaults, path, source, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    // The top level already ran; keep only what calls need.
    let ast = Arc::new(with_constants_inlined(engine, path, source, &scope, ast)?);
    let Metadata {
        id,
        title,
        severity,
        description,
        help,
        defaults,
    } = metadata;
    let mut rule = Rule {
        id: id.into(),
        title,
        severity,
        description,
        help,
        path: path.to_owned(),
        source: source.into(),
        params: Params(Arc::new(defaults.clone())),
        defaults,
        overridden: Vec::new(),
        ast,
        check_arity,
        tenant_arity,
        evidence_fields,
        enabled: true,
        native: Err(String::new()),
        native_limits: NativeLimits::of(engine),
        verify_fast_path_every: 0,
    };
    rule.compile_native();
    Ok(rule)
}

/// `source` compiled by the sandbox, named after its file.
fn parse(engine: &Engine, path: &Path, source: &str) -> Result<AST, Vec<Diagnostic>> {
    let mut ast = engine
        .compile(source)
        .map_err(|e| vec![Diagnostic::from_parse(path, source, &e)])?;
    ast.set_source(path.display().to_string());
    Ok(ast)
}

/// Runs the rule's top level once: the scope it leaves declares the
/// metadata.
fn run_top_level(
    engine: &Engine,
    path: &Path,
    source: &str,
    ast: &AST,
) -> Result<Scope<'static>, Vec<Diagnostic>> {
    let mut scope = Scope::new();
    engine
        .run_ast_with_scope(&mut scope, ast)
        .map_err(|e| vec![Diagnostic::from_eval(path, source, &e)])?;
    Ok(scope)
}

/// What a rule's top level declares about it.
struct Metadata {
    id: String,
    title: String,
    severity: Severity,
    description: String,
    help: String,
    defaults: Map,
}

/// Reads `ID`, `TITLE`, `DESCRIPTION`, `HELP`, `SEVERITY` and `PARAMS` from the
/// top level's scope, with their defaults; a wrong one is an error in
/// `errors`, pointing at its declaration.
fn read_metadata(
    scope: &Scope,
    path: &Path,
    source: &str,
    errors: &mut Vec<Diagnostic>,
) -> Metadata {
    let meta_error = |name: &str, message: String| {
        let (line, column) = find_declaration(source, name);
        Diagnostic::at(path, source, line, column, message)
    };
    let text = |name: &str, errors: &mut Vec<Diagnostic>| -> Option<String> {
        let value = scope.get(name)?;
        match value.clone().into_immutable_string() {
            Ok(s) => Some(s.to_string()),
            Err(found) => {
                errors.push(meta_error(
                    name,
                    format!("`{name}` must be a string, found {found}"),
                ));
                None
            }
        }
    };
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let id = text("ID", errors).unwrap_or(stem);
    let title = text("TITLE", errors).unwrap_or_else(|| id.clone());
    let description = text("DESCRIPTION", errors).unwrap_or_default();
    let help = text("HELP", errors).unwrap_or_default();
    let severity = match text("SEVERITY", errors) {
        Some(s) => s.parse().unwrap_or_else(|message| {
            errors.push(meta_error("SEVERITY", message));
            Severity::Medium
        }),
        None => Severity::Medium,
    };
    let defaults = match scope.get("PARAMS") {
        None => Map::new(),
        Some(value) => value.clone().try_cast::<Map>().unwrap_or_else(|| {
            errors.push(meta_error(
                "PARAMS",
                format!(
                    "`PARAMS` must be a map like #{{ days: 90 }}, found {}",
                    value.type_name()
                ),
            ));
            Map::new()
        }),
    };
    if !valid_id(&id) {
        errors.push(meta_error(
            "ID",
            format!("rule id `{id}` may use only letters, digits, `-` and `_`"),
        ));
    }
    Metadata {
        id,
        title,
        severity,
        description,
        help,
        defaults,
    }
}

/// The arities of `check` and `tenant`, `None` where the rule does not
/// define one; a rule with neither, or with one taking no or too many
/// parameters, is an error in `errors`.
fn entry_points(
    ast: &AST,
    path: &Path,
    source: &str,
    errors: &mut Vec<Diagnostic>,
) -> (Option<usize>, Option<usize>) {
    let arity = |name: &str| {
        ast.iter_functions()
            .find(|f| f.name == name)
            .map(|f| f.params.len())
    };
    let check_arity = arity("check");
    let tenant_arity = arity("tenant");
    if check_arity.is_none() && tenant_arity.is_none() {
        errors.push(Diagnostic::at(
            path,
            source,
            0,
            0,
            "the rule defines neither `fn check(row, params)` nor `fn tenant(summary, params)`",
        ));
    }
    for (name, arity) in [("check", check_arity), ("tenant", tenant_arity)] {
        if arity.is_some_and(|n| n == 0 || n > 2) {
            let (line, column) = find_declaration(source, name);
            errors.push(Diagnostic::at(
                path,
                source,
                line,
                column,
                format!(
                    "`{name}` takes one or two parameters: ({}, params)",
                    if name == "check" { "row" } else { "summary" }
                ),
            ));
        }
    }
    (check_arity, tenant_arity)
}

/// The name of the first parameter of the function `name`, if any.
fn first_param(ast: &AST, name: &str) -> Option<String> {
    ast.iter_functions()
        .find(|f| f.name == name)
        .and_then(|f| f.params.first().map(|p| p.to_string()))
}

/// The row properties the rule reads as `<row_param>.<name>`, in the order
/// they first appear, to show as evidence with its findings (the group's
/// own fields, which every finding has, left out). A name rows do not
/// have is an error in `errors`, with a hint.
fn row_fields(
    ast: &AST,
    row_param: Option<&str>,
    path: &Path,
    source: &str,
    errors: &mut Vec<Diagnostic>,
) -> Vec<&'static str> {
    let mut evidence_fields = Vec::new();
    let Some(row_param) = row_param else {
        return evidence_fields;
    };
    for access in property_accesses(ast, row_param) {
        match row_property_names().find(|n| *n == access.name) {
            Some(name) => {
                if !evidence_fields.contains(&name)
                    && !matches!(
                        name,
                        "group_display_name" | "group_id" | "owner_principal_name" | "line"
                    )
                {
                    evidence_fields.push(name);
                }
            }
            None => errors.push(unknown_name(
                path,
                source,
                &access,
                "field",
                row_property_names(),
            )),
        }
    }
    evidence_fields
}

/// Calls run functions without re-running the top level, so they cannot
/// see its scope; its constants (`const LIMIT = 5;`) are folded into the
/// function bodies instead, as a script run would make them visible.
/// The optimiser replaces a constant by its value wherever it is read as
/// a value, but not where it is the target of a method call or an index
/// (`NAMES.len()`, `NAMES[0]`); those are reported as errors with advice.
fn with_constants_inlined(
    engine: &Engine,
    path: &Path,
    source: &str,
    scope: &Scope,
    ast: AST,
) -> Result<AST, Vec<Diagnostic>> {
    let mut constants = Scope::new();
    for (name, is_constant, value) in scope.iter() {
        if is_constant {
            constants.push_constant_dynamic(name.to_owned(), value);
        }
    }
    let source_name = ast.source().map(str::to_owned);
    let mut ast = engine.optimize_ast(&constants, ast, engine.optimization_level());
    if let Some(name) = source_name {
        ast.set_source(name);
    }
    let mut errors = Vec::new();
    ast.clone_functions_only().walk(&mut |path_to_node: &[rhai::ASTNode]| {
        if let Some(rhai::ASTNode::Expr(rhai::Expr::Variable(variable, _, position))) = path_to_node.last() {
            let name = variable.1.as_str();
            if constants.contains(name) {
                let local = name.to_lowercase();
                errors.push(Diagnostic::new(
                    path,
                    source,
                    *position,
                    format!("the constant `{name}` cannot be used with a method or an index inside a function; copy it first: `let {local} = {name};`"),
                ));
            }
        }
        true
    });
    if errors.is_empty() {
        Ok(ast)
    } else {
        Err(errors)
    }
}

/// `summary.<name>` reads in a tenant rule are checked like row fields.
/// Skipped when `check` and `tenant` name their parameter alike, since the
/// scan cannot tell the two functions apart.
fn check_summary_accesses(
    ast: &AST,
    path: &Path,
    source: &str,
    row_param: Option<&str>,
    errors: &mut Vec<Diagnostic>,
) {
    let Some(summary_param) = first_param(ast, "tenant").filter(|p| Some(p.as_str()) != row_param)
    else {
        return;
    };
    for access in property_accesses(ast, &summary_param) {
        if !summary_property_names().any(|n| n == access.name) {
            errors.push(unknown_name(
                path,
                source,
                &access,
                "summary property",
                summary_property_names(),
            ));
        }
    }
}

/// `params.<name>` reads of a name `PARAMS` does not declare: they would
/// read `()` on every row and the rule would silently never fire (or
/// always fire). The parameters are the second parameter of `check` and
/// of `tenant`.
fn check_param_accesses(
    ast: &AST,
    declared: &Map,
    path: &Path,
    source: &str,
    errors: &mut Vec<Diagnostic>,
) {
    let params_names = ["check", "tenant"].into_iter().filter_map(|function| {
        ast.iter_functions()
            .find(|f| f.name == function)
            .and_then(|f| f.params.get(1).map(|p| p.to_string()))
    });
    let mut seen = Vec::new();
    for params in params_names {
        if seen.contains(&params) {
            continue;
        }
        for access in property_accesses(ast, &params) {
            if !declared.contains_key(access.name.as_str()) {
                let mut error = unknown_name(
                    path,
                    source,
                    &access,
                    "parameter",
                    declared.keys().map(|k| k.as_str()),
                );
                if declared.is_empty() {
                    error.message.push_str(" (the rule declares no PARAMS)");
                }
                errors.push(error);
            }
        }
        seen.push(params);
    }
}

/// An error for a name that is not one of `known`, with the closest as a hint.
fn unknown_name<'a>(
    path: &Path,
    source: &str,
    access: &PropertyAccess,
    what: &str,
    known: impl Iterator<Item = &'a str>,
) -> Diagnostic {
    let hint = did_you_mean(&access.name, known)
        .map(|h| format!("; did you mean `{h}`?"))
        .unwrap_or_default();
    Diagnostic::at(
        path,
        source,
        access.line,
        access.column,
        format!("unknown {what} `{}`{hint}", access.name),
    )
}

/// A rule id: letters, digits, `-` and `_`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Where `const NAME` (or `let NAME`, `fn NAME`) is declared: (line, column).
fn find_declaration(source: &str, name: &str) -> (usize, usize) {
    for (index, line) in source.lines().enumerate() {
        for keyword in ["const", "let", "fn"] {
            let needle = format!("{keyword} {name}");
            if let Some(column) = line.find(&needle) {
                let after = line[column + needle.len()..].chars().next();
                if !after.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    return (index + 1, column + keyword.len() + 2);
                }
            }
        }
    }
    (0, 0)
}

/// A `row.name` in the source (not a method call).
#[derive(Debug, PartialEq)]
pub struct PropertyAccess {
    /// The property's name.
    pub name: String,
    /// Where the name starts: 1-based line and column.
    pub line: usize,
    /// 1-based column of the name's first character.
    pub column: usize,
}

/// Finds `<variable>.<name>` property reads anywhere in `ast` (its top
/// level and every function), in source order, from Rhai's own parse:
/// comments, strings and the text of backtick strings are not code,
/// their `${…}` parts are. Method calls (`row.has("x")`) are not
/// properties. Give it the AST [`parse_as_written`] makes, so reads in
/// code the optimiser would drop are found too.
pub fn property_accesses(ast: &AST, variable: &str) -> Vec<PropertyAccess> {
    let mut found = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Expr(Expr::Dot(chain, _, _))) = path.last()
            && let Expr::Variable(name, _, _) = &chain.lhs
            && name.1 == variable
            && let Some((property, position)) = first_property(&chain.rhs)
        {
            found.push(PropertyAccess {
                name: property.to_owned(),
                line: position.line().unwrap_or(0),
                column: position.position().unwrap_or(0),
            });
        }
        true
    });
    // The walk visits functions in no particular order.
    found.sort_by_key(|access| (access.line, access.column));
    found
}

/// The property the right side of a `.` starts with: `x` of `row.x`,
/// `row.x.y` and `row.x[0]`; `None` for a method call.
fn first_property(rhs: &Expr) -> Option<(&str, Position)> {
    match rhs {
        Expr::Property(property, position) => Some((property.2.as_str(), *position)),
        Expr::Dot(chain, _, _) | Expr::Index(chain, _, _) => first_property(&chain.lhs),
        _ => None,
    }
}

/// Text of an immutable string (helper for rule metadata in other modules).
pub fn text_of(value: &Dynamic) -> Option<ImmutableString> {
    value.clone().into_immutable_string().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::config::Limits;
    use crate::engine::sandbox::build_engine;

    fn compile(source: &str) -> Result<Rule, Vec<Diagnostic>> {
        compile_rule(
            &build_engine(&Limits::default()),
            Path::new("rules/demo.rhai"),
            source,
        )
    }

    #[test]
    fn reads_metadata_and_defaults() {
        let rule = compile(
            r#"
            const TITLE = "Demo";
            const HELP = "Ask the owner.";
            const SEVERITY = "high";
            const PARAMS = #{ days: 90, label: "x" };
            fn check(row, params) { row.days_since_activity >= params.days }
            "#,
        )
        .unwrap();
        assert_eq!(&*rule.id, "demo");
        assert_eq!(rule.title, "Demo");
        assert_eq!(rule.help, "Ask the owner.");
        assert_eq!(rule.severity, Severity::High);
        assert_eq!(rule.defaults.get("days").unwrap().as_int().unwrap(), 90);
        assert_eq!(rule.check_arity, Some(2));
        assert_eq!(rule.evidence_fields, vec!["days_since_activity"]);
    }

    #[test]
    fn a_misspelt_field_is_a_compile_error_with_a_hint() {
        let errors =
            compile("fn check(r) {\n  if r.days_since_activty > 3 { true }\n}").unwrap_err();
        assert_eq!(
            errors[0].short(),
            "rules/demo.rhai:2:8: unknown field `days_since_activty`; did you mean `days_since_activity`?"
        );
    }

    #[test]
    fn a_misspelt_summary_property_is_a_compile_error_with_a_hint() {
        let errors = compile("fn tenant(summary) {\n  summary.never_activ > 3\n}").unwrap_err();
        assert_eq!(
            errors[0].short(),
            "rules/demo.rhai:2:11: unknown summary property `never_activ`; did you mean `never_active`?"
        );
    }

    #[test]
    fn top_level_constants_are_visible_in_check() {
        let engine = build_engine(&Limits::default());
        let source = "const LIMIT = 5;\nconst NAMES = [\"a\"];\nconst M = #{ days: 1 };\nfn check(row) { let names = NAMES; LIMIT + names.len() + M.days - (if \"a\" in NAMES { 1 } else { 0 }) }";
        let rule = compile_rule(&engine, Path::new("rules/demo.rhai"), source).unwrap();
        let options = rhai::CallFnOptions::new().eval_ast(false);
        let value = engine
            .call_fn_with_options::<i64>(options, &mut Scope::new(), &rule.ast, "check", (1_i64,))
            .unwrap();
        assert_eq!(value, 6);
        assert_eq!(rule.ast.source(), Some("rules/demo.rhai"));
    }

    #[test]
    fn a_constant_that_cannot_be_inlined_is_an_error_with_advice() {
        let errors =
            compile("const NAMES = [\"a\"];\nfn check(row) {\n  NAMES.len() > 0\n}").unwrap_err();
        assert_eq!(
            errors[0].short(),
            "rules/demo.rhai:3:3: the constant `NAMES` cannot be used with a method or an index inside a function; copy it first: `let names = NAMES;`"
        );
    }

    #[test]
    fn property_scan_skips_strings_comments_and_methods() {
        let src = "// row.nope\nlet a = \"row.nope\"; row.has(\"x\"); row . member_count; `${row.group_type}`";
        let ast = parse_as_written(src).unwrap();
        let names: Vec<String> = property_accesses(&ast, "row")
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(names, vec!["member_count", "group_type"]);
    }

    #[test]
    fn property_scan_finds_every_read_in_source_order_also_dead_ones() {
        let src = "fn helper(row) { row.b }\nfn check(row) {\n  if false { return row.zz; }\n  row.a.len() + row?.c + row.d[0] + row.f.g + row\n    .e\n}";
        let ast = parse_as_written(src).unwrap();
        let found: Vec<(String, usize, usize)> = property_accesses(&ast, "row")
            .into_iter()
            .map(|a| (a.name, a.line, a.column))
            .collect();
        let expected = [
            ("b", 1, 22),
            ("zz", 3, 25),
            ("a", 4, 7),
            ("c", 4, 22),
            ("d", 4, 30),
            ("f", 4, 41),
            ("e", 5, 6),
        ];
        assert_eq!(
            found,
            expected.map(|(n, l, c)| (n.to_owned(), l, c)).to_vec()
        );
    }

    #[test]
    fn a_misspelt_field_in_dead_code_is_still_an_error() {
        let errors =
            compile("fn check(row) {\n  return true;\n  row.member_cuont > 3\n}").unwrap_err();
        assert_eq!(
            errors[0].short(),
            "rules/demo.rhai:3:7: unknown field `member_cuont`; did you mean `member_count`?"
        );
    }

    #[test]
    fn bad_metadata_points_at_the_declaration() {
        let errors = compile("const SEVERITY = \"urgent\";\nfn check(row) { false }").unwrap_err();
        assert_eq!(errors[0].line, 1);
        assert!(errors[0].message.contains("unknown severity `urgent`"));
    }

    #[test]
    fn overrides_are_checked_against_the_defaults() {
        let rule = compile("const PARAMS = #{ days: 90 };\nfn check(row, p) { false }").unwrap();
        let config = |text: &str| RulesConfig {
            params: [("demo".to_owned(), toml::from_str(text).unwrap())].into(),
            ..Default::default()
        };
        let set = RuleSet::from_rules(vec![rule.clone()], &config("days = 30")).unwrap();
        assert_eq!(
            set.rules[0].params.0.get("days").unwrap().as_int().unwrap(),
            30
        );
        let err = RuleSet::from_rules(vec![rule.clone()], &config("dayz = 30")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config key `rules.params.demo.dayz`: rule `demo` has no parameter `dayz` (it has: days); did you mean `days`?"
        );
        let err = RuleSet::from_rules(vec![rule], &config("days = \"30\"")).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("expected int like the default `90`, found string"),
            "{err}"
        );
    }
}
