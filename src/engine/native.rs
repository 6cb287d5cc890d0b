//! The fast path: a rule's `check` compiled to a native expression tree.
//!
//! Interpreting a script costs thousands of instructions per call, most of
//! them spent resolving functions, boxing values and setting up the call,
//! not in the rule's logic. Most rules are a few comparisons of row fields
//! against parameters, so at load time [`NativeCheck::compile`] walks the
//! body of `check` (the AST Rhai already parsed and optimised) and, when
//! every construct in it is one this module models, builds a tree of
//! `Node`s that evaluates directly on the row's cells, with parameters
//! folded in as constants.
//!
//! Exactness comes first. The tree models only the cases whose result is
//! certain; anything else at run time — a type it does not model, an integer
//! overflow, a condition that is not a bool, a column the report lacks —
//! makes it give up with [`Bail`] before it has done anything visible, and
//! the evaluator asks the interpreter for that row, which then gives its
//! usual result or error. A rule that uses something the compiler does not
//! know (loops, arrays, closures, other functions of the file, `print`, …)
//! is not compiled at all and always runs in the interpreter;
//! [`NativeCheck::compile`] says why. `rules test` runs every case both ways
//! and fails on any difference, and a differential fuzzer (`native_fuzz.rs`)
//! runs generated rules both ways.

use std::borrow::Cow;

use rhai::{AST, ASTFlags, ASTNode, Engine, Expr, FnCallExpr, Map, Stmt};

use super::rule::Rule;
use super::sandbox::{Fact, Prop, format_bytes, index_value};
use super::value::Value;
use crate::report::header::Col;
use crate::report::row::{Cell, RowData};

/// `*slot = value`, without the call that drops the old value when it
/// owns nothing (ints, bools, `()` and borrowed text: nearly every value
/// a rule keeps).
#[inline(always)]
fn set<'a>(slot: &mut Value<'a>, value: Value<'a>) {
    let old = std::mem::replace(slot, value);
    if old.owns_nothing() {
        std::mem::forget(old);
    }
}

/// This row needs the interpreter: the fast path met a case it does not
/// model. Nothing visible has happened yet.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bail;

type Eval<'a> = Result<Value<'a>, Bail>;

/// The engine's limits a compiled `check` keeps to, as the interpreter
/// would: taken from the engine when the rule is compiled, so the rule can
/// be compiled again (with new parameters) without it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NativeLimits {
    max_operations: u64,
    max_string_size: usize,
    max_map_size: usize,
}

impl NativeLimits {
    /// The limits `engine` runs scripts under.
    pub fn of(engine: &Engine) -> NativeLimits {
        NativeLimits {
            max_operations: engine.max_operations(),
            max_string_size: engine.max_string_size(),
            max_map_size: engine.max_map_size(),
        }
    }
}

/// A rule's `check`, compiled. Immutable once compiled (a run's locals
/// live on the caller's stack), so one is shared by every worker: see
/// [`Rule::native`].
#[derive(Debug)]
pub struct NativeCheck {
    body: Block,
    locals: usize,
    max_string_size: usize,
    max_map_size: usize,
}

impl NativeCheck {
    /// Compiles `rule`'s `check` with its parameters in force; `Err` says
    /// which construct keeps the rule in the interpreter.
    pub fn compile(engine: &Engine, rule: &Rule) -> Result<NativeCheck, String> {
        Self::compile_with(NativeLimits::of(engine), rule)
    }

    /// [`NativeCheck::compile`] under `limits`, those of the engine that
    /// compiled `rule`.
    pub fn compile_with(limits: NativeLimits, rule: &Rule) -> Result<NativeCheck, String> {
        let (def, statements) = check_body(rule)?;
        let mut compiler = Compiler {
            ast: &rule.ast,
            row: def.params[0].to_string(),
            params_name: def.params.get(1).map(|p| p.to_string()),
            params: &rule.params.0,
            scopes: Vec::new(),
            slots: 0,
            nodes: 0,
        };
        let body = compiler.block(&statements)?;
        // The interpreter counts operations and stops a call that makes too
        // many; a compiled rule has no loops, so its count is bounded by its
        // size. Keep rules that could reach the limit in the interpreter, so
        // they fail the same way.
        let max_operations = limits.max_operations;
        if max_operations != 0 && (compiler.nodes as u64) * 4 >= max_operations {
            return Err(format!(
                "`check` is large for max_operations = {max_operations}"
            ));
        }
        Ok(NativeCheck {
            body,
            locals: compiler.slots,
            max_string_size: limits.max_string_size,
            max_map_size: limits.max_map_size,
        })
    }

    /// Runs `check` on `row`: what it returned, or [`Bail`].
    pub fn check<'a>(&'a self, row: &'a RowData) -> Eval<'a> {
        let mut value = Value::Unit;
        self.check_into(row, &mut value)?;
        Ok(value)
    }

    /// [`NativeCheck::check`], leaving what `check` returned in `out` (on
    /// [`Bail`], whatever it held then). The evaluator's way: it reads the
    /// value where the rule wrote it, the variant first, where moving it
    /// out whole read back, with wide loads, the narrower stores just made
    /// (a stall of the store buffer that was about 4% of a scan's time).
    pub fn check_into<'a>(&'a self, row: &'a RowData, out: &mut Value<'a>) -> Result<(), Bail> {
        // Locals live on the stack, in an array no larger than needed.
        match self.locals {
            0 => self.run(row, &mut [], out),
            1..=2 => self.run_with(row, <[Value<'a>; 2]>::default(), out),
            3..=8 => self.run_with(row, <[Value<'a>; 8]>::default(), out),
            n => self.run(row, &mut vec![Value::Unit; n], out),
        }
    }

    /// [`NativeCheck::run`] with `locals` on the stack, dropped only when
    /// one of them owns something (most rules keep ints and `()` there).
    #[inline(always)]
    fn run_with<'a, const N: usize>(
        &'a self,
        row: &'a RowData,
        locals: [Value<'a>; N],
        out: &mut Value<'a>,
    ) -> Result<(), Bail> {
        let mut locals = std::mem::ManuallyDrop::new(locals);
        let result = self.run(row, &mut *locals, out);
        if !locals.iter().all(Value::owns_nothing) {
            drop(std::mem::ManuallyDrop::into_inner(locals));
        }
        result
    }

    fn run<'a>(
        &'a self,
        row: &'a RowData,
        locals: &mut [Value<'a>],
        out: &mut Value<'a>,
    ) -> Result<(), Bail> {
        let mut cx = Cx {
            row,
            locals,
            max_string_size: self.max_string_size,
            max_map_size: self.max_map_size,
        };
        cx.block(&self.body, out)?;
        Ok(())
    }
}

/// `rule`'s `check` and the statements of its body.
fn check_body(rule: &Rule) -> Result<(&rhai::ScriptFuncDef, Vec<Stmt>), String> {
    let arity = rule.check_arity.ok_or("the rule has no `check`")?;
    let def = rule
        .ast
        .shared_lib()
        .get_script_fn("check", arity)
        .ok_or("the rule has no `check`")?;
    // Rhai does not export the type of a function's body, but its walk
    // visits the top-level statements of every function of an AST: in an
    // AST holding `check` alone they are exactly those of its body.
    // (Closures are functions of their own, left out here; positions are
    // not used, as a closure's statements lie between `check`'s braces.)
    let mut lib = rhai::Module::new();
    lib.set_script_fn(def.clone());
    let only_check = AST::new_from_module(lib);
    let mut statements = Vec::new();
    only_check.walk(&mut |path: &[ASTNode]| {
        if let [ASTNode::Stmt(stmt)] = path {
            statements.push((*stmt).clone());
        }
        true
    });
    Ok((def, statements))
}

#[derive(Debug)]
struct Block(Vec<Statement>);

#[derive(Debug)]
enum Statement {
    Let(usize, Node),
    If(Cond, Block, Block),
    /// `if <condition> { return <constant>; }`, the shape of most of a
    /// rule's `if`s, settled without looking into its branches.
    Guard(Cond, Value<'static>),
    Return(Node),
    Expr(Node),
    Block(Block),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Func {
    FormatBytes,
    IsUnknown,
    Len,
    Contains,
    StartsWith,
    EndsWith,
    ToLower,
    ToUpper,
    ToFloat,
    ToInt,
    Round,
    Floor,
    Ceiling,
    Abs,
}

impl Func {
    fn named(name: &str, arity: usize) -> Option<Func> {
        Some(match (name, arity) {
            ("format_bytes", 1) => Func::FormatBytes,
            ("is_unknown", 1) => Func::IsUnknown,
            ("len", 1) => Func::Len,
            ("contains", 2) => Func::Contains,
            ("starts_with", 2) => Func::StartsWith,
            ("ends_with", 2) => Func::EndsWith,
            ("to_lower", 1) => Func::ToLower,
            ("to_upper", 1) => Func::ToUpper,
            ("to_float", 1) => Func::ToFloat,
            ("to_int", 1) => Func::ToInt,
            ("round", 1) => Func::Round,
            ("floor", 1) => Func::Floor,
            ("ceiling", 1) => Func::Ceiling,
            ("abs", 1) => Func::Abs,
            _ => return None,
        })
    }
}

#[derive(Debug)]
enum Node {
    Const(Value<'static>),
    Local(usize),
    /// `row.<property>`
    Prop(Prop),
    /// `row["Header"]`
    Index(String),
    /// `row.has("Header")`
    Has(String),
    /// `row.has("Header")` of a known column.
    HasCol(Col),
    /// `!`, `&&`, `||` and `== ()`: a condition used as a value.
    Cond(Box<Cond>),
    Neg(Box<Node>),
    Binary(Op, Box<(Node, Node)>),
    Coalesce(Vec<Node>),
    Interpolated(Vec<Node>),
    Call1(Func, Box<Node>),
    Call2(Func, Box<(Node, Node)>),
    /// `#{ name: value, … }`
    Map(Vec<(String, Node)>),
    /// A block used as a value, like `if … { a } else { b }` on the right
    /// of `let`.
    Block(Block),
}

/// A condition: of an `if`, an operand of `!`, `&&` or `||`, or `== ()`.
/// The shapes rules use most are told apart when the rule is compiled, so
/// running one reads a cell or a local and compares, with no value built
/// and no node inspected on every row; anything else is a value that must
/// be a bool ([`Cond::Value`]).
#[derive(Debug)]
enum Cond {
    Const(bool),
    Not(Box<Cond>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    /// `row.<column> ?? <bool>`: a blank cell is the default, a boolean
    /// cell its bool, any other cell a value that is neither; negated
    /// (`!(row.<column> ?? <bool>)`) when the second flag is set.
    Flag(Col, bool, bool),
    /// `row.<property> ?? <bool>`, for a property that is not a column.
    PropFlag(Prop, bool),
    /// `x == ()`, or `x != ()` when the flag is set; a column's text is
    /// not read.
    ColUnit(Col, bool),
    LocalUnit(usize, bool),
    PropUnit(Prop, bool),
    /// `value == ()` of any other value.
    IsUnit(Box<Node>, bool),
    /// `row.has("…")` of a known column.
    HasCol(Col),
    /// A comparison of ints (constants, locals, int cells); when an
    /// operand holds something else at run time, the comparison node is
    /// evaluated as a value.
    Compare(Op, Int, Int, Box<Node>),
    /// Any other value, which must be a bool.
    Value(Node),
}

/// An operand of [`Cond::Compare`] that may hold an int.
#[derive(Clone, Copy, Debug)]
enum Int {
    Const(i64),
    Local(usize),
    Col(Col),
}

impl Int {
    fn of(node: &Node) -> Option<Int> {
        Some(match node {
            Node::Const(Value::Int(i)) => Int::Const(*i),
            Node::Local(slot) => Int::Local(*slot),
            Node::Prop(Prop::Column(col)) => Int::Col(*col),
            _ => return None,
        })
    }
}

impl Cond {
    /// `node` as a condition.
    fn of(node: Node) -> Cond {
        match node {
            Node::Const(Value::Bool(b)) => Cond::Const(b),
            Node::Cond(cond) => *cond,
            Node::HasCol(col) => Cond::HasCol(col),
            Node::Coalesce(nodes) => match <[Node; 2]>::try_from(nodes) {
                Ok([Node::Prop(prop), Node::Const(Value::Bool(default))]) => match prop {
                    Prop::Column(col) => Cond::Flag(col, default, false),
                    prop => Cond::PropFlag(prop, default),
                },
                Ok(pair) => Cond::Value(Node::Coalesce(pair.into())),
                Err(nodes) => Cond::Value(Node::Coalesce(nodes)),
            },
            Node::Binary(op, operands) if op.compares() => {
                match (Int::of(&operands.0), Int::of(&operands.1)) {
                    (Some(left), Some(right)) => {
                        Cond::Compare(op, left, right, Box::new(Node::Binary(op, operands)))
                    }
                    _ => Cond::Value(Node::Binary(op, operands)),
                }
            }
            node => Cond::Value(node),
        }
    }

    /// `value == ()` (`!= ()` when `negated`) as a condition.
    fn is_unit(value: Node, negated: bool) -> Cond {
        match value {
            Node::Prop(Prop::Column(col)) => Cond::ColUnit(col, negated),
            Node::Prop(prop) => Cond::PropUnit(prop, negated),
            Node::Local(slot) => Cond::LocalUnit(slot, negated),
            value => Cond::IsUnit(Box::new(value), negated),
        }
    }
}

impl Op {
    fn compares(self) -> bool {
        matches!(self, Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge)
    }
}

struct Cx<'a, 'l> {
    row: &'a RowData,
    locals: &'l mut [Value<'a>],
    max_string_size: usize,
    max_map_size: usize,
}

impl<'a> Cx<'a, '_> {
    /// Runs `block`, leaving its value (that of its last statement) or the
    /// value a `return` gave in `out`; `Ok(true)` when a `return` ran.
    fn block(&mut self, block: &'a Block, out: &mut Value<'a>) -> Result<bool, Bail> {
        let Some((last, body)) = block.0.split_last() else {
            set(out, Value::Unit);
            return Ok(false);
        };
        for statement in body {
            if self.statement(statement, out, false)? {
                return Ok(true);
            }
        }
        self.statement(last, out, true)
    }

    /// Runs `statement`; `Ok(true)` when a `return` ran. Only the last
    /// statement of a block (`last`) or a `return` gives `out` its value:
    /// the others' values would be replaced by the next one's anyway, and
    /// writing each to `out` to be read back soon after cost a stall of the
    /// store buffer per statement.
    #[inline(always)]
    fn statement(
        &mut self,
        statement: &'a Statement,
        out: &mut Value<'a>,
        last: bool,
    ) -> Result<bool, Bail> {
        Ok(match statement {
            Statement::Let(slot, node) => {
                match node {
                    // `let x = row.<property>;`, the usual `let`: the value
                    // is made in its slot, not made aside and copied there
                    // (whose wide loads of a value just written in narrow
                    // stores stalled).
                    Node::Prop(prop) => {
                        let row = self.row;
                        // Through `set`: the old value is dropped only if
                        // it holds memory (a drop call per `let` was 1% of
                        // a scan).
                        set(&mut self.locals[*slot], prop.value(row));
                    }
                    node => {
                        let value = self.eval(node)?;
                        set(&mut self.locals[*slot], value);
                    }
                }
                if last {
                    set(out, Value::Unit);
                }
                false
            }
            Statement::Guard(condition, value) => {
                let taken = self.test(condition)?;
                if taken {
                    set(out, value.borrowed());
                } else if last {
                    set(out, Value::Unit);
                }
                taken
            }
            Statement::If(condition, then, otherwise) => {
                let taken = self.test(condition)?;
                let branch = if taken { then } else { otherwise };
                // The usual branches, `{}` (an `if` without `else`) and
                // `{ return <constant>; }`, without a call.
                match branch.0.as_slice() {
                    [] => {
                        if last {
                            set(out, Value::Unit);
                        }
                        false
                    }
                    [Statement::Return(Node::Const(value))] => {
                        set(out, value.borrowed());
                        true
                    }
                    _ => self.block(branch, out)?,
                }
            }
            Statement::Return(node) => {
                let value = match node {
                    // `return ();` and `return "message";`
                    Node::Const(value) => value.borrowed(),
                    node => self.eval(node)?,
                };
                set(out, value);
                true
            }
            Statement::Expr(node) => {
                // Evaluated wherever it stands: it may bail.
                let value = self.eval(node)?;
                if last {
                    set(out, value);
                }
                false
            }
            Statement::Block(inner) => self.block(inner, out)?,
        })
    }

    /// A condition's answer; [`Bail`] when its value is not a bool.
    fn test(&mut self, cond: &'a Cond) -> Result<bool, Bail> {
        let cells = &self.row.cells;
        match cond {
            Cond::Const(b) => Ok(*b),
            Cond::Flag(col, default, negated) => match cells[*col as usize] {
                Cell::Blank => Ok(*default != *negated),
                Cell::Bool(b) => Ok(b != *negated),
                _ => Err(Bail),
            },
            Cond::ColUnit(col, negated) => Ok((cells[*col as usize] == Cell::Blank) != *negated),
            Cond::LocalUnit(slot, negated) => {
                Ok(matches!(self.locals[*slot], Value::Unit) != *negated)
            }
            Cond::Compare(op, left, right, node) => match (self.int(*left), self.int(*right)) {
                (Some(a), Some(b)) => Ok(match op {
                    Op::Eq => a == b,
                    Op::Ne => a != b,
                    Op::Lt => a < b,
                    Op::Le => a <= b,
                    Op::Gt => a > b,
                    _ => a >= b,
                }),
                _ => self.value_test(node),
            },
            Cond::Not(inner) => Ok(!self.test(inner)?),
            Cond::And(conds) => {
                for cond in conds {
                    if !self.test(cond)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Cond::Or(conds) => {
                for cond in conds {
                    if self.test(cond)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            _ => self.test_other(cond),
        }
    }

    /// The rarer conditions of [`Cx::test`], out of line.
    #[inline(never)]
    fn test_other(&mut self, cond: &'a Cond) -> Result<bool, Bail> {
        match cond {
            Cond::PropFlag(prop, default) => match prop.value(self.row) {
                Value::Unit => Ok(*default),
                Value::Bool(b) => Ok(b),
                _ => Err(Bail),
            },
            Cond::PropUnit(prop, negated) => Ok(prop.is_unit(self.row) != *negated),
            Cond::IsUnit(value, negated) => Ok((self.eval(value)? == Value::Unit) != *negated),
            Cond::HasCol(col) => Ok(self.row.layout.position(*col).is_some()),
            Cond::Value(node) => self.value_test(node),
            other => self.test(other),
        }
    }

    /// `node`'s value, which must be a bool.
    #[inline(never)]
    fn value_test(&mut self, node: &'a Node) -> Result<bool, Bail> {
        match self.eval(node)? {
            Value::Bool(b) => Ok(b),
            _ => Err(Bail),
        }
    }

    /// The int `operand` holds, if it holds one.
    #[inline(always)]
    fn int(&self, operand: Int) -> Option<i64> {
        match operand {
            Int::Const(i) => Some(i),
            Int::Local(slot) => match self.locals[slot] {
                Value::Int(i) => Some(i),
                _ => None,
            },
            Int::Col(col) => self.row.int(col),
        }
    }

    /// `node`'s value. The usual nodes (constants, locals, row fields,
    /// conditions) are settled here; the rest in [`Cx::eval_other`], kept
    /// out of line so this one stays small to call.
    fn eval(&mut self, node: &'a Node) -> Eval<'a> {
        Ok(match node {
            Node::Const(value) => value.borrowed(),
            Node::Local(slot) => self.locals[*slot].clone(),
            Node::Prop(prop) => prop.value(self.row),
            Node::HasCol(col) => Value::Bool(self.row.layout.position(*col).is_some()),
            Node::Cond(cond) => Value::Bool(self.test(cond)?),
            _ => return self.eval_other(node),
        })
    }

    #[inline(never)]
    fn eval_other(&mut self, node: &'a Node) -> Eval<'a> {
        Ok(match node {
            Node::Const(value) => value.borrowed(),
            Node::Local(slot) => self.locals[*slot].clone(),
            Node::Prop(prop) => prop.value(self.row),
            Node::Index(name) => index_value(self.row, name).ok_or(Bail)?,
            Node::Has(name) => Value::Bool(self.row.layout.find(name).is_some()),
            Node::HasCol(col) => Value::Bool(self.row.layout.position(*col).is_some()),
            Node::Cond(cond) => Value::Bool(self.test(cond)?),
            Node::Neg(inner) => match self.eval(inner)? {
                Value::Int(i) => Value::Int(i.checked_neg().ok_or(Bail)?),
                Value::Float(f) => Value::Float(-f),
                _ => return Err(Bail),
            },
            Node::Binary(op, operands) => {
                let left = self.eval(&operands.0)?;
                let right = self.eval(&operands.1)?;
                binary(*op, left, right, self.max_string_size)?
            }
            Node::Coalesce(nodes) => {
                let mut value = Value::Unit;
                for node in nodes {
                    value = self.eval(node)?;
                    if value != Value::Unit {
                        break;
                    }
                }
                value
            }
            Node::Interpolated(parts) => {
                let mut text = String::with_capacity(64);
                for part in parts {
                    self.interpolate(part, &mut text)?;
                    if self.max_string_size != 0 && text.len() > self.max_string_size {
                        return Err(Bail);
                    }
                }
                Value::Str(Cow::Owned(text))
            }
            Node::Call1(func, arg) => call(*func, self.eval(arg)?, None)?,
            Node::Call2(func, args) => {
                let first = self.eval(&args.0)?;
                let second = self.eval(&args.1)?;
                call(*func, first, Some(second))?
            }
            Node::Map(entries) => {
                let mut values = Vec::with_capacity(entries.len());
                for (name, node) in entries {
                    values.push((Cow::Borrowed(name.as_str()), self.eval(node)?));
                }
                let map = Value::Map(values);
                // Rhai checks a new map's total size against the limits.
                let (strings, items) = map.data_size();
                if (self.max_string_size != 0 && strings > self.max_string_size)
                    || (self.max_map_size != 0 && items > self.max_map_size)
                {
                    return Err(Bail);
                }
                map
            }
            // A `return` inside an expression is rare: the interpreter has it.
            Node::Block(block) => {
                let mut value = Value::Unit;
                if self.block(block, &mut value)? {
                    return Err(Bail);
                }
                value
            }
        })
    }
}

impl<'a> Cx<'a, '_> {
    /// Appends `part` to an interpolated string as Rhai writes it (text,
    /// an int, a bool; anything else is [`Bail`]). The usual parts — a
    /// literal, a local, a cell — are written straight from where they
    /// are, without a value built and dropped for each: a rule's message
    /// cost about 850 instructions before.
    fn interpolate(&mut self, part: &'a Node, text: &mut String) -> Result<(), Bail> {
        match part {
            Node::Const(value) => push_part(text, value),
            Node::Local(slot) => push_part(text, &self.locals[*slot]),
            Node::Prop(Prop::Column(col)) => match self.row.cells[*col as usize] {
                Cell::Blank => Err(Bail),
                Cell::Int(i) => {
                    text.push_str(itoa::Buffer::new().format(i));
                    Ok(())
                }
                Cell::Bool(b) => {
                    text.push_str(if b { "true" } else { "false" });
                    Ok(())
                }
                Cell::Day(_) | Cell::Text => {
                    text.push_str(&self.row.text(*col).ok_or(Bail)?);
                    Ok(())
                }
            },
            other => {
                let value = self.eval(other)?;
                push_part(text, &value)
            }
        }
    }
}

/// Appends `value` to an interpolated string (see [`Cx::interpolate`]).
fn push_part(text: &mut String, value: &Value<'_>) -> Result<(), Bail> {
    match value {
        Value::Str(s) => text.push_str(s),
        Value::Int(i) => text.push_str(itoa::Buffer::new().format(*i)),
        Value::Bool(b) => text.push_str(if *b { "true" } else { "false" }),
        _ => return Err(Bail),
    }
    Ok(())
}

fn binary<'a>(op: Op, left: Value<'a>, right: Value<'a>, max_string_size: usize) -> Eval<'a> {
    use Value::{Bool, Float, Int, Map, Str, Unit};
    if let (Float(x), Float(y)) = (&left, &right)
        && let Some(answer) = compare_floats(op, *x, *y)
    {
        return Ok(Bool(answer));
    }
    let ordering = match (&left, &right) {
        (Int(a), Int(b)) => Some(a.cmp(b)),
        (Str(a), Str(b)) => Some(a.cmp(b)),
        _ => None,
    };
    let same_kind = std::mem::discriminant(&left) == std::mem::discriminant(&right);
    let numeric = |v: &Value| matches!(v, Int(_) | Float(_));
    // A number against text is a rule error in the interpreter (see
    // `sandbox::register_mixed_comparisons`): let it say so.
    let text_and_number =
        (matches!(left, Str(_)) && numeric(&right)) || (numeric(&left) && matches!(right, Str(_)));
    if text_and_number && matches!(op, Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge) {
        return Err(Bail);
    }
    Ok(match op {
        Op::Eq | Op::Ne => {
            let equal = match (&left, &right) {
                (Unit, Unit) => true,
                (Bool(a), Bool(b)) => a == b,
                (Int(a), Int(b)) => a == b,
                (Str(a), Str(b)) => a == b,
                (Map(a), Map(b)) => maps_equal(a, b)?,
                // An int against a float compares numerically in Rhai.
                _ if numeric(&left) && numeric(&right) => return Err(Bail),
                // Different kinds are never equal.
                _ => false,
            };
            Bool(equal == (op == Op::Eq))
        }
        Op::Lt | Op::Le | Op::Gt | Op::Ge => {
            if !same_kind {
                if numeric(&left) && numeric(&right) {
                    return Err(Bail);
                }
                // Rhai: ordering values of different kinds is false.
                return Ok(Bool(false));
            }
            let Some(ordering) = ordering else {
                // (), bools, NaN: leave to the interpreter.
                return Err(Bail);
            };
            Bool(match op {
                Op::Lt => ordering.is_lt(),
                Op::Le => ordering.is_le(),
                Op::Gt => ordering.is_gt(),
                _ => ordering.is_ge(),
            })
        }
        Op::Add => match (left, right) {
            (Int(a), Int(b)) => Int(a.checked_add(b).ok_or(Bail)?),
            (Float(a), Float(b)) => Float(a + b),
            (Str(a), Str(b)) => {
                let text = a.into_owned() + &*b;
                if max_string_size != 0 && text.len() > max_string_size {
                    return Err(Bail);
                }
                Str(Cow::Owned(text))
            }
            _ => return Err(Bail),
        },
        Op::Sub | Op::Mul | Op::Div | Op::Rem => match (left, right) {
            (Int(a), Int(b)) => Int(match op {
                Op::Sub => a.checked_sub(b),
                Op::Mul => a.checked_mul(b),
                Op::Div => a.checked_div(b),
                _ => a.checked_rem(b),
            }
            .ok_or(Bail)?),
            (Float(a), Float(b)) => {
                if matches!(op, Op::Div | Op::Rem) && b == 0.0 {
                    return Err(Bail);
                }
                Float(match op {
                    Op::Sub => a - b,
                    Op::Mul => a * b,
                    Op::Div => a / b,
                    _ => a % b,
                })
            }
            _ => return Err(Bail),
        },
    })
}

/// A comparison of two floats as Rhai 1.27 makes it (`func::builtin`,
/// checked build): relative to the larger magnitude, within
/// `f64::EPSILON`, with its own answers for zeros, infinities and NaN.
/// `None` for an operator that is not a comparison.
fn compare_floats(op: Op, x: f64, y: f64) -> Option<bool> {
    let max = if x * y == 0.0 {
        1.0
    } else {
        x.abs().max(y.abs())
    };
    if max == 0.0 {
        return Some(matches!(op, Op::Eq | Op::Ge | Op::Le));
    }
    let epsilon = f64::EPSILON;
    Some(match op {
        Op::Eq => (x - y).abs() / max <= epsilon,
        Op::Ne => (x - y).abs() / max > epsilon,
        Op::Gt => (x - y) / max > epsilon,
        Op::Ge => (x - y) / max > -epsilon,
        Op::Lt => (y - x) / max > epsilon,
        Op::Le => (y - x) / max > -epsilon,
        _ => return None,
    })
}

/// `a == b` for two maps as Rhai's `map_basic::equals` decides it: the
/// same number of entries and, in key order, each key in both with values
/// `==` (the first difference decides, so a later entry that would be an
/// error in Rhai is not reached).
fn maps_equal(
    a: &[(Cow<'_, str>, Value<'_>)],
    b: &[(Cow<'_, str>, Value<'_>)],
) -> Result<bool, Bail> {
    let sorted = |entries: &[(Cow<'_, str>, Value<'_>)]| {
        let mut keys: Vec<usize> = (0..entries.len()).collect();
        keys.sort_by(|&i, &j| entries[i].0.cmp(&entries[j].0));
        keys
    };
    let (left, right) = (sorted(a), sorted(b));
    let duplicated = |entries: &[(Cow<'_, str>, Value<'_>)], keys: &[usize]| {
        keys.windows(2).any(|w| entries[w[0]].0 == entries[w[1]].0)
    };
    if duplicated(a, &left) || duplicated(b, &right) {
        return Err(Bail);
    }
    if a.len() != b.len() {
        return Ok(false);
    }
    for &i in &left {
        let (name, value) = &a[i];
        let Some((_, other)) = b.iter().find(|(n, _)| n == name) else {
            return Ok(false);
        };
        match binary(Op::Eq, value.borrowed(), other.borrowed(), 0)? {
            Value::Bool(true) => {}
            Value::Bool(false) => return Ok(false),
            _ => return Err(Bail),
        }
    }
    Ok(true)
}

fn call<'a>(func: Func, first: Value<'a>, second: Option<Value<'a>>) -> Eval<'a> {
    use Value::{Bool, Float, Int, Str, Unit};
    Ok(match (func, first, second) {
        (Func::FormatBytes, Int(bytes), None) => Str(Cow::Owned(format_bytes(bytes))),
        (Func::FormatBytes, Unit, None) => Str(Cow::Borrowed("unknown")),
        (Func::IsUnknown, value, None) => Bool(value == Unit),
        (Func::Len, Str(s), None) => Int(i64::try_from(s.chars().count()).unwrap_or(i64::MAX)),
        (Func::Contains, Str(s), Some(Str(p))) => Bool(s.contains(&*p)),
        (Func::StartsWith, Str(s), Some(Str(p))) => Bool(s.starts_with(&*p)),
        (Func::EndsWith, Str(s), Some(Str(p))) => Bool(s.ends_with(&*p)),
        // As Rhai's string package does it.
        (Func::ToLower, Str(s), None) => {
            if s.is_empty() || s.chars().all(char::is_lowercase) {
                Str(s)
            } else {
                Str(Cow::Owned(s.to_lowercase()))
            }
        }
        (Func::ToUpper, Str(s), None) => {
            if s.chars().all(char::is_uppercase) {
                Str(s)
            } else {
                Str(Cow::Owned(s.to_uppercase()))
            }
        }
        (Func::ToFloat, Int(i), None) => Float(i as f64),
        (Func::ToFloat, Float(f), None) => Float(f),
        (Func::ToInt, Int(i), None) => Int(i),
        // Out of range is an error in Rhai.
        (Func::ToInt, Float(f), None) if !(f > i64::MAX as f64 || f < i64::MIN as f64) => {
            Int(f.trunc() as i64)
        }
        (Func::Round, Float(f), None) => Float(f.round()),
        (Func::Floor, Float(f), None) => Float(f.floor()),
        (Func::Ceiling, Float(f), None) => Float(f.ceil()),
        (Func::Abs, Int(i), None) => Int(i.checked_abs().ok_or(Bail)?),
        (Func::Abs, Float(f), None) => Float(f.abs()),
        _ => return Err(Bail),
    })
}

/// A call of `func` (which takes one or two arguments) on `args`.
fn call_node(func: Func, mut args: Vec<Node>) -> Node {
    let second = (args.len() == 2).then(|| args.pop()).flatten();
    let first = args.pop().unwrap_or(Node::Const(Value::Unit));
    match second {
        Some(second) => Node::Call2(func, Box::new((first, second))),
        None => Node::Call1(func, Box::new(first)),
    }
}

/// What a `.` chain is applied to.
enum Base {
    Row,
    Params,
    Value(Node),
}

struct Compiler<'r> {
    ast: &'r AST,
    /// Name of `check`'s row parameter.
    row: String,
    /// Name of `check`'s parameters parameter, if it takes one.
    params_name: Option<String>,
    params: &'r Map,
    /// Local variables in scope: (name, slot), innermost last.
    scopes: Vec<(String, usize)>,
    slots: usize,
    nodes: usize,
}

type Compiled<T> = Result<T, String>;

impl Compiler<'_> {
    fn block(&mut self, statements: &[Stmt]) -> Compiled<Block> {
        let depth = self.scopes.len();
        let mut out = Vec::new();
        for statement in statements {
            self.nodes += 1;
            match statement {
                // The optimiser leaves an empty statement for a trailing
                // `return;` or an empty `if` body: it evaluates to `()`, so
                // as the last statement it is the block's value. (Anywhere
                // else the next statement sets the value anyway.)
                Stmt::Noop(_) => {
                    if std::ptr::eq(statement, statements.last().expect("in the loop")) {
                        out.push(Statement::Expr(Node::Const(Value::Unit)));
                    }
                }
                Stmt::Var(var, flags, _) => {
                    if flags.contains(ASTFlags::EXPORTED) {
                        return Err("`export`".into());
                    }
                    let (ident, init, _) = &**var;
                    let node = self.expr(init)?;
                    let slot = self.slots;
                    self.slots += 1;
                    self.scopes.push((ident.name.to_string(), slot));
                    out.push(Statement::Let(slot, node));
                }
                Stmt::If(flow, _) => {
                    let condition = self.expr(&flow.expr)?;
                    let mut then = self.block(flow.body.statements())?;
                    let otherwise = self.block(flow.branch.statements())?;
                    let condition = Cond::of(condition);
                    out.push(match (then.0.as_mut_slice(), otherwise.0.is_empty()) {
                        ([Statement::Return(Node::Const(value))], true) => {
                            Statement::Guard(condition, std::mem::replace(value, Value::Unit))
                        }
                        _ => Statement::If(condition, then, otherwise),
                    });
                }
                Stmt::Return(value, flags, _) => {
                    if flags.contains(ASTFlags::BREAK) {
                        return Err("`throw`".into());
                    }
                    let node = match value {
                        Some(value) => self.expr(value)?,
                        None => Node::Const(Value::Unit),
                    };
                    out.push(Statement::Return(node));
                }
                Stmt::Expr(expr) => out.push(Statement::Expr(self.expr(expr)?)),
                Stmt::FnCall(call, _) => out.push(Statement::Expr(self.function(call)?)),
                Stmt::Block(inner) => out.push(Statement::Block(self.block(inner.statements())?)),
                other => return Err(format!("the statement at {}", other.position())),
            }
        }
        self.scopes.truncate(depth);
        Ok(Block(out))
    }

    fn local(&self, name: &str) -> Option<usize> {
        self.scopes
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, slot)| *slot)
    }

    fn expr(&mut self, expr: &Expr) -> Compiled<Node> {
        self.nodes += 1;
        Ok(match expr {
            Expr::Unit(_) => Node::Const(Value::Unit),
            Expr::BoolConstant(b, _) => Node::Const(Value::Bool(*b)),
            Expr::IntegerConstant(i, _) => Node::Const(Value::Int(*i)),
            Expr::FloatConstant(f, _) => Node::Const(Value::Float(**f)),
            Expr::StringConstant(s, _) => Node::Const(Value::Str(Cow::Owned(s.to_string()))),
            Expr::DynamicConstant(value, pos) if value.is_fnptr() => {
                return Err(format!("a closure or function pointer at {pos}"));
            }
            Expr::DynamicConstant(value, pos) => Node::Const(
                Value::from_dynamic(value)
                    .ok_or_else(|| format!("the {} constant at {pos}", value.type_name()))?,
            ),
            Expr::InterpolatedString(parts, _) => Node::Interpolated(
                parts
                    .iter()
                    .map(|p| self.expr(p))
                    .collect::<Compiled<_>>()?,
            ),
            Expr::Variable(var, _, pos) => {
                if !var.2.is_empty() {
                    return Err(format!("the qualified name at {pos}"));
                }
                let name = var.1.as_str();
                match self.local(name) {
                    Some(slot) => Node::Local(slot),
                    None => return Err(format!("`{name}` used as a value at {pos}")),
                }
            }
            Expr::And(operands, _) => Node::Cond(Box::new(Cond::And(self.conds(operands)?))),
            Expr::Or(operands, _) => Node::Cond(Box::new(Cond::Or(self.conds(operands)?))),
            Expr::Coalesce(operands, _) => Node::Coalesce(self.exprs(operands)?),
            Expr::FnCall(call, _) => self.function(call)?,
            Expr::Map(map, _) => {
                let (entries, _) = &**map;
                Node::Map(
                    entries
                        .iter()
                        .map(|(name, value)| Ok((name.name.to_string(), self.expr(value)?)))
                        .collect::<Compiled<_>>()?,
                )
            }
            Expr::Stmt(block) => Node::Block(self.block(block.statements())?),
            Expr::Dot(chain, flags, pos) => {
                let base = self.base(&chain.lhs)?;
                if flags.contains(ASTFlags::NEGATED) && !matches!(base, Base::Row | Base::Params) {
                    return Err(format!("`?.` at {pos}"));
                }
                self.apply(base, &chain.rhs)?
            }
            Expr::Index(index, flags, pos) => {
                let base = self.base(&index.lhs)?;
                match (base, &index.rhs) {
                    (Base::Row, Expr::StringConstant(name, _))
                        if !flags.contains(ASTFlags::NEGATED) =>
                    {
                        Node::Index(name.to_string())
                    }
                    _ => return Err(format!("the index at {pos}")),
                }
            }
            other => return Err(format!("the expression at {}", other.position())),
        })
    }

    fn exprs(&mut self, exprs: &[Expr]) -> Compiled<Vec<Node>> {
        exprs.iter().map(|e| self.expr(e)).collect()
    }

    fn conds(&mut self, exprs: &[Expr]) -> Compiled<Vec<Cond>> {
        exprs.iter().map(|e| Ok(Cond::of(self.expr(e)?))).collect()
    }

    /// The left side of `.` or `[`: the row, the parameters or a value.
    fn base(&mut self, expr: &Expr) -> Compiled<Base> {
        if let Expr::Variable(var, _, _) = expr
            && var.2.is_empty()
            && self.local(&var.1).is_none()
        {
            if var.1 == self.row {
                return Ok(Base::Row);
            }
            if self.params_name.as_deref() == Some(var.1.as_str()) {
                return Ok(Base::Params);
            }
        }
        Ok(Base::Value(self.expr(expr)?))
    }

    /// `base.rhs`, where `rhs` may continue the chain.
    fn apply(&mut self, base: Base, rhs: &Expr) -> Compiled<Node> {
        self.nodes += 1;
        match (base, rhs) {
            (Base::Row, Expr::Property(prop, pos)) => {
                let name = prop.2.as_str();
                match Prop::named(name) {
                    // An array: the fast path models no arrays, so a
                    // rule reading it runs in the interpreter.
                    Some(Prop::Directory(Fact::Owners)) => {
                        Err(format!("`row.{name}` (an array) at {pos}"))
                    }
                    Some(prop) => Ok(Node::Prop(prop)),
                    None => Err(format!("`row.{name}` at {pos}")),
                }
            }
            (Base::Params, Expr::Property(prop, pos)) => {
                let name = prop.2.as_str();
                let value = self
                    .params
                    .get(name)
                    .ok_or_else(|| format!("the unknown parameter `{name}` at {pos}"))?;
                Ok(Node::Const(Value::from_dynamic(value).ok_or_else(
                    || format!("the {} parameter `{name}`", value.type_name()),
                )?))
            }
            (Base::Row, Expr::MethodCall(call, pos)) => {
                match (call.name.as_str(), &call.args[..]) {
                    ("has", [Expr::StringConstant(name, _)])
                        if self.user_fn("has", 2).is_none() =>
                    {
                        // A known column is known whatever the report: only
                        // whether this report has it is left to the row.
                        Ok(match Col::named(name) {
                            Some(col) => Node::HasCol(col),
                            None => Node::Has(name.to_string()),
                        })
                    }
                    (name, _) => Err(format!("`row.{name}(…)` at {pos}")),
                }
            }
            (Base::Value(receiver), Expr::MethodCall(call, pos)) => {
                if !call.namespace.is_empty() {
                    return Err(format!("the qualified call at {pos}"));
                }
                let func = self.known_function(&call.name, call.args.len() + 1, *pos)?;
                let mut args = vec![receiver];
                args.extend(self.exprs(&call.args)?);
                Ok(call_node(func, args))
            }
            (base, Expr::Dot(chain, flags, pos)) => {
                if flags.contains(ASTFlags::NEGATED) {
                    return Err(format!("`?.` at {pos}"));
                }
                let inner = Base::Value(self.apply(base, &chain.lhs)?);
                self.apply(inner, &chain.rhs)
            }
            (_, other) => Err(format!("the property or method at {}", other.position())),
        }
    }

    /// A function the file itself defines (it would take precedence).
    fn user_fn(&self, name: &str, arity: usize) -> Option<()> {
        self.ast.shared_lib().get_script_fn(name, arity).map(|_| ())
    }

    fn known_function(&self, name: &str, arity: usize, pos: rhai::Position) -> Compiled<Func> {
        if self.user_fn(name, arity).is_some() {
            return Err(format!("the call of the rule's own `{name}` at {pos}"));
        }
        Func::named(name, arity).ok_or_else(|| format!("the call of `{name}` at {pos}"))
    }

    fn function(&mut self, call: &FnCallExpr) -> Compiled<Node> {
        if !call.namespace.is_empty() || call.capture_parent_scope {
            return Err(format!("the call of `{}`", call.name));
        }
        let args = &call.args[..];
        if call.op_token.is_some() {
            let op = match (call.name.as_str(), args.len()) {
                ("!", 1) => {
                    let not = match Cond::of(self.expr(&args[0])?) {
                        Cond::Flag(col, default, negated) => Cond::Flag(col, default, !negated),
                        inner => Cond::Not(Box::new(inner)),
                    };
                    return Ok(Node::Cond(Box::new(not)));
                }
                ("-", 1) => return Ok(Node::Neg(Box::new(self.expr(&args[0])?))),
                ("==", 2) => Op::Eq,
                ("!=", 2) => Op::Ne,
                ("<", 2) => Op::Lt,
                ("<=", 2) => Op::Le,
                (">", 2) => Op::Gt,
                (">=", 2) => Op::Ge,
                ("+", 2) => Op::Add,
                ("-", 2) => Op::Sub,
                ("*", 2) => Op::Mul,
                ("/", 2) => Op::Div,
                ("%", 2) => Op::Rem,
                (name, _) => return Err(format!("the operator `{name}`")),
            };
            let left = self.expr(&args[0])?;
            let right = self.expr(&args[1])?;
            let unit = |n: &Node| matches!(n, Node::Const(Value::Unit));
            return Ok(match (op, left, right) {
                (Op::Eq | Op::Ne, value, unit_node) | (Op::Eq | Op::Ne, unit_node, value)
                    if unit(&unit_node) =>
                {
                    Node::Cond(Box::new(Cond::is_unit(value, op == Op::Ne)))
                }
                (op, left, right) => Node::Binary(op, Box::new((left, right))),
            });
        }
        let pos = args.first().map_or(rhai::Position::NONE, Expr::position);
        if matches!(call.name.as_str(), "Fn" | "curry") {
            return Err(format!("a closure or function pointer at {pos}"));
        }
        let func = self.known_function(&call.name, args.len(), pos)?;
        Ok(call_node(func, self.exprs(args)?))
    }
}

#[cfg(test)]
#[path = "native_fuzz.rs"]
mod fuzz;

#[cfg(test)]
mod tests {
    //! The fast path against the interpreter, on every kind of cell the
    //! report can hold: wherever the compiled rule gives an answer, it must
    //! be the interpreter's answer, and never where the interpreter fails.

    use std::path::Path;
    use std::sync::Arc;

    use crate::report::reader::Record;
    use rhai::{Dynamic, Scope};

    use super::*;
    use crate::engine::config::Limits;
    use crate::engine::eval::interpret;
    use crate::engine::rule::compile_rule;
    use crate::engine::sandbox::build_engine;
    use crate::report::header::{COLUMNS, Kind, Layout};

    /// A small deterministic generator (xorshift).
    struct Rng(u64);

    impl Rng {
        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            items[(self.0 % items.len() as u64) as usize]
        }
    }

    const INTS: &[&str] = &[
        "",
        "0",
        "1",
        "3",
        "9",
        "10",
        "11",
        "89",
        "90",
        "91",
        "-5",
        "4757931",
        "1000000000",
        "9223372036854775807",
        "-9223372036854775808",
    ];
    const BOOLS: &[&str] = &["", "True", "False", "true", "FALSE"];
    const DATES: &[&str] = &["", "2026-08-27", "2026-05-01", "2025-12-31", "1970-01-01"];
    const TEXTS: &[&str] = &[
        "",
        "Public",
        "Private",
        "PUBLIC",
        "jane@contoso.com",
        "Say #QUOT#hi#QUOT#",
        "Ωmega ǅ",
        "00000000-0000-0000-0000-000000000000",
        "0123456789ABCDEF0123456789ABCDEF",
        "  padded  ",
        "ub",
    ];

    /// Rows of every shape for `headers` (parse failures are skipped).
    fn rows(headers: &[&str], count: usize, seed: u64) -> Vec<Arc<RowData>> {
        let layout = Arc::new(Layout::from_headers(headers).expect("test headers"));
        let mut rng = Rng(seed);
        let mut rows = Vec::new();
        for line in 0..count as u64 {
            let cells: Vec<&str> = headers
                .iter()
                .map(|h| {
                    let kind = COLUMNS.iter().find(|c| c.header == *h).map(|c| c.kind);
                    match kind {
                        Some(Kind::Int) => rng.pick(INTS),
                        Some(Kind::Bool) => rng.pick(BOOLS),
                        Some(Kind::Date) => rng.pick(DATES),
                        _ => rng.pick(TEXTS),
                    }
                })
                .collect();
            let mut row = RowData::empty(Arc::clone(&layout));
            row.record = Record::from(cells);
            if row.parse(line + 2).is_ok() {
                rows.push(Arc::new(row));
            }
        }
        rows
    }

    fn all_headers() -> Vec<&'static str> {
        let mut headers: Vec<&str> = COLUMNS.iter().map(|c| c.header).collect();
        headers.push("Custom Note");
        headers
    }

    fn describe(value: &Dynamic) -> String {
        format!("{}: {value:?}", value.type_name())
    }

    /// Runs `source` both ways over `rows`; returns how many rows the fast
    /// path answered itself.
    fn differential(source: &str, rows: &[Arc<RowData>]) -> usize {
        let engine = build_engine(&Limits::default());
        let rule = compile_rule(&engine, Path::new("t.rhai"), source)
            .unwrap_or_else(|e| panic!("{source}: {e:?}"));
        let native = NativeCheck::compile(&engine, &rule)
            .unwrap_or_else(|reason| panic!("not compiled ({reason}):\n{source}"));
        let mut scope = Scope::new();
        let mut answered = 0;
        for row in rows {
            let Ok(fast) = native.check(row) else {
                continue;
            };
            answered += 1;
            let fast = describe(&fast.into_dynamic());
            match interpret(&engine, &mut scope, &rule, row) {
                Ok(slow) => assert_eq!(fast, describe(&slow), "{source}\nrow: {:?}", row.record),
                Err(error) => panic!(
                    "the fast path answered {fast} where the interpreter failed: {}\n{source}\nrow: {:?}",
                    error.short(),
                    row.record
                ),
            }
        }
        answered
    }

    const BUNDLED: [&str; 4] = [
        include_str!("../../rules/deleted-with-storage.rhai"),
        include_str!("../../rules/high-external-members.rhai"),
        include_str!("../../rules/inactive-groups.rhai"),
        include_str!("../../rules/ownerless-groups.rhai"),
    ];

    #[test]
    fn bundled_rules_agree_and_never_fall_back() {
        let rows = rows(&all_headers(), 4000, 7);
        for source in BUNDLED {
            assert_eq!(differential(source, &rows), rows.len(), "{source}");
        }
    }

    #[test]
    fn bundled_rules_agree_on_reports_missing_optional_columns() {
        let headers = [
            "Report Refresh Date",
            "Group Display Name",
            "Is Deleted",
            "Last Activity Date",
            "Member Count",
        ];
        let rows = rows(&headers, 500, 11);
        for source in BUNDLED {
            assert_eq!(differential(source, &rows), rows.len(), "{source}");
        }
    }

    #[test]
    fn example_rules_agree_and_rarely_fall_back() {
        let rows = rows(&all_headers(), 3000, 5);
        for source in [
            include_str!("../../examples/rules/empty-groups.rhai"),
            include_str!("../../examples/rules/guest-majority.rhai"),
            include_str!("../../examples/rules/large-idle-sites.rhai"),
            include_str!("../../examples/rules/public-with-guests.rhai"),
        ] {
            // Only an overflow (a guest count near 2^63 makes a share out
            // of `to_int`'s range) is left to the interpreter.
            let answered = differential(source, &rows);
            assert!(
                answered * 100 >= rows.len() * 95,
                "{answered}/{}: {source}",
                rows.len()
            );
        }
    }

    #[test]
    fn every_construct_agrees_with_the_interpreter() {
        let rows = rows(&all_headers(), 1500, 3);
        let sources = [
            // Comparisons, also of () and of mixed kinds.
            r#"fn check(row) {
                let a = row.member_count; let b = row.external_member_count;
                `${a == b}|${a != b}|${a < b}|${a <= b}|${a > b}|${a >= b}`
            }"#,
            r#"fn check(row) {
                `${row.group_type == row.member_count}|${row.is_deleted == ()}|${row.group_type < 5}|${row.is_deleted != 1}|${row.group_type > "P"}`
            }"#,
            // Integer arithmetic, overflow and division by zero.
            r#"fn check(row) {
                let x = row.member_count;
                if x == () { return (); }
                `${x + 1} ${x - 10} ${x * 1000000000000} ${x / (x % 7)} ${-x} ${x % 3}`
            }"#,
            // Strings and their methods, also on ().
            r#"fn check(row) {
                let t = row.group_type ?? "";
                `${t.len()} ${len(t)} ${t.contains("ub")} ${t.starts_with("P")} ${t.ends_with("e")} ${t.to_lower()} ${t.to_upper()} ${contains(t, "i")}`
            }"#,
            r#"fn check(row) { row.group_display_name.to_upper() }"#,
            r#"fn check(row) { (row.group_display_name ?? "") + "/" + (row.owner_principal_name ?? "") }"#,
            r#"fn check(row) { row.group_display_name + 5 }"#,
            // Logic on values that are not bools.
            r#"fn check(row) { if row.member_count > 3 && row.is_deleted { 1 } else { 2 } }"#,
            r#"fn check(row) { row.is_deleted || row.member_count > 3 }"#,
            r#"fn check(row) { !row.is_deleted }"#,
            r#"fn check(row) { if row.member_count { "yes" } }"#,
            // Coalescing chains.
            r#"fn check(row) { row.owner_principal_name ?? row.group_display_name ?? "nobody" }"#,
            // Parameters of every kind, folded in.
            r#"const PARAMS = #{ share: 0.5, name: "Public", flag: true, big: 9223372036854775807 };
               fn check(row, params) {
                   if params.flag && row.group_type == params.name { return `${row.member_count ?? 0}`; }
                   if row.member_count != () && row.member_count > params.share { return params.share * 2.0; }
                   row.member_count + params.big
               }"#,
            // Scopes, shadowing, nested blocks, a block's last value.
            r#"fn check(row) {
                let x = 1;
                { let x = row.member_count; if x != () && x > 10 { return x; } }
                let y = if row.is_deleted ?? false { "deleted" } else { "kept" };
                x
            }"#,
            r#"fn check(row) { if row.is_deleted ?? false { "deleted" } else if row.member_count == 0 { "empty" } else { true } }"#,
            // Any column by header, optional columns.
            r#"fn check(row) { `${row["Group Type"]}|${row["Custom Note"] ?? "-"}|${row.has("Custom Note")}|${row.has("Nope")}|${row["member_count"]}` }"#,
            r#"fn check(row) { row["Nope"] }"#,
            // Derived properties and helpers.
            r#"fn check(row) {
                `${row.days_since_activity ?? -1} ${format_bytes(row.total_storage_bytes)} ${row.is_concealed} ${row.line} ${is_unknown(row.group_type)}`
            }"#,
            r#"fn check(row) { format_bytes(row.group_type) }"#,
            // Every kind of return value.
            r#"fn check(row) { if row.member_count == () { return; } if row.member_count > 10 { return 1.5; } row.member_count > 3 }"#,
            r#"fn check(row) { -1.5 - 2.0 * 3.0 / 4.0 % 1.0 }"#,
            // Finding maps, numbers converted and rounded.
            r#"fn check(row) {
                #{ message: `line ${row.line}`, severity: "low", evidence: #{ n: row.member_count, f: 1.5, s: row.group_type } }
            }"#,
            r#"fn check(row) {
                let m = row.member_count ?? 0;
                #{ a: m.to_float(), b: (m.to_float() / 3.0).round(), c: (m.to_float() * 1e30).to_int(),
                   d: m.abs(), e: (-2.5).floor(), f: (2.5).ceiling(), g: m.to_int(), h: to_float(1.5) }
            }"#,
            r#"fn check(row) { `${#{ a: 1 } == #{ a: 1 }}` }"#,
            r#"fn check(row) { `${#{ a: row.line } == 1} ${#{ a: 1 } != ()}` }"#,
        ];
        for source in sources {
            differential(source, &rows);
        }
    }

    #[test]
    fn rules_using_what_it_does_not_model_stay_in_the_interpreter() {
        let engine = build_engine(&Limits::default());
        for (source, reason) in [
            ("fn check(row) { print(row.line); true }", "`print`"),
            (
                "fn check(row) { let n = 0; for i in 0..3 { n += i; } n > 1 }",
                "statement",
            ),
            ("fn check(row) { [row.line] }", "expression"),
            (
                "fn helper(x) { x } fn check(row) { helper(row.line) }",
                "`helper`",
            ),
            (
                "fn len(x) { 0 } fn check(row) { (row.group_type ?? \"\").len() }",
                "own `len`",
            ),
            ("fn check(row) { throw \"no\"; }", "`throw`"),
            (
                "fn check(row) { let f = |x| x + 1; f.call(row.line) }",
                "closure",
            ),
            (
                "fn check(row) { let f = || { return \"boom\"; }; if row.is_deleted ?? false { f.call() } }",
                "closure",
            ),
            ("fn check(row) { row }", "`row` used as a value"),
            (
                "const PARAMS = #{ names: [\"a\"] }; fn check(row, params) { params.names }",
                "array",
            ),
        ] {
            let rule = compile_rule(&engine, Path::new("t.rhai"), source).expect(source);
            let error = NativeCheck::compile(&engine, &rule).expect_err(source);
            assert!(error.contains(reason), "{source}: {error}");
        }
    }

    #[test]
    fn the_check_is_compiled_once_with_the_rule_and_again_for_new_parameters() {
        let engine = build_engine(&Limits::default());
        let source = "const PARAMS = #{ n: 5 };\nfn check(row, params) { params.n }";
        let rule = compile_rule(&engine, Path::new("t.rhai"), source).unwrap();
        let row = &rows(&all_headers(), 10, 1)[0];
        let native = rule.native.as_ref().expect("compiled at load");
        assert_eq!(native.check(row), Ok(Value::Int(5)));
        // Copies of the rule (one per use) share the one compiled check.
        let mut copy = rule.clone();
        assert!(Arc::ptr_eq(copy.native.as_ref().unwrap(), native));
        copy.apply_overrides(&toml::from_str("n = 7").unwrap())
            .unwrap();
        assert_eq!(copy.native.as_ref().unwrap().check(row), Ok(Value::Int(7)));
    }

    /// Issue #21's five divergences, one rule each: both paths must agree
    /// on every row (and the fast path must answer where it compiles).
    #[test]
    fn the_five_divergences_of_issue_21_are_closed() {
        let rows = rows(&all_headers(), 600, 21);
        for source in [
            // 1. A trailing `return;` (an empty statement) gives `()`.
            r#"fn check(row) { if row.member_count > 5 { "big" } return; }"#,
            // 2. A final `if` with an empty body gives `()`.
            r#"fn check(row, params) { if (row.member_count ?? 0) > 5 {} }"#,
            r#"fn check(row) { let x = "T"; if row.is_deleted ?? false {} }"#,
            // 3. Floats compare with Rhai's relative epsilon.
            r#"fn check(row) { if (row.member_count ?? 0).to_float() * 0.1 > 0.3 { "more" } }"#,
            r#"fn check(row) {
                let f = (row.member_count ?? 0).to_float() * 1e-300 * 1e-20;
                `${f == 0.0} ${f != 0.0} ${f < 1e-320} ${f >= 0.0} ${0.1 + 0.2 == 0.3} ${0.1 + 0.2 <= 0.3}`
            }"#,
            r#"fn check(row) {
                let big = 1.7976931348623157e308 * (row.member_count ?? 0).to_float();
                let nan = big - big;
                `${big == big} ${big > 1.0} ${nan == nan} ${nan != nan} ${nan < 1.0} ${nan >= nan} ${-0.0 == 0.0}`
            }"#,
            // 4. Maps compare by content.
            r#"fn check(row) { `${#{a: row.line} == #{a: row.line}} ${#{a: row.line, b: 1} != #{b: 1, a: row.line}}` }"#,
            r#"fn check(row) { `${#{a: row.group_type} == #{a: row.group_type}} ${#{a: 0.1 + 0.2} == #{a: 0.3}} ${#{a: 1} == #{b: 1}}` }"#,
        ] {
            assert_eq!(differential(source, &rows), rows.len(), "{source}");
        }
    }

    /// Issue #21's fifth divergence: `check` is compiled from its own
    /// definition, so a closure's statements (a function of their own,
    /// lying between `check`'s braces) are never spliced into it, and a
    /// rule that makes a closure stays in the interpreter.
    #[test]
    fn closure_bodies_are_not_spliced_into_check() {
        let engine = build_engine(&Limits::default());
        let row = &rows(&all_headers(), 1, 1)[0];
        // The optimiser drops the dead branch: what is left is empty.
        let source = r#"fn check(row) { if false { let f = || { return "boom"; }; } }"#;
        let rule = compile_rule(&engine, Path::new("t.rhai"), source).unwrap();
        let (_, statements) = check_body(&rule).unwrap();
        assert!(
            statements.iter().all(|s| matches!(s, Stmt::Noop(_))),
            "{statements:?}"
        );
        assert_eq!(rule.native.as_ref().unwrap().check(row), Ok(Value::Unit));
        for source in [
            r#"fn check(row) { let f = || { return "boom"; }; if row.is_deleted ?? false { f.call() } }"#,
            r#"fn check(row) { let f = |x| x + 1; f.call(row.line) }"#,
        ] {
            let rule = compile_rule(&engine, Path::new("t.rhai"), source).unwrap();
            assert!(rule.native.is_err(), "{source}");
        }
    }

    /// The shape of a statement as the compiler walks it, one word per
    /// variant; anything the compiler does not model is a failure.
    fn stmt_shape(stmt: &Stmt) -> String {
        let block = |statements: &[Stmt]| {
            statements
                .iter()
                .map(stmt_shape)
                .collect::<Vec<_>>()
                .join(" ")
        };
        match stmt {
            Stmt::Noop(_) => "noop".into(),
            Stmt::Var(var, _, _) => format!("(let {} {})", var.0.name, expr_shape(&var.1)),
            Stmt::If(flow, _) => format!(
                "(if {} [{}] [{}])",
                expr_shape(&flow.expr),
                block(flow.body.statements()),
                block(flow.branch.statements())
            ),
            Stmt::Return(value, flags, _) => format!(
                "({} {})",
                if flags.contains(ASTFlags::BREAK) {
                    "throw"
                } else {
                    "return"
                },
                value.as_ref().map_or("-".into(), |v| expr_shape(v))
            ),
            Stmt::Expr(expr) => format!("(expr {})", expr_shape(expr)),
            Stmt::FnCall(call, _) => format!("(stmt-{})", call_shape(call)),
            Stmt::Block(inner) => format!("{{{}}}", block(inner.statements())),
            other => panic!("{AST_CHANGED}: unexpected statement {other:?}"),
        }
    }

    fn call_shape(call: &FnCallExpr) -> String {
        let args: Vec<String> = call.args.iter().map(expr_shape).collect();
        let kind = if call.op_token.is_some() {
            "op"
        } else {
            "call"
        };
        format!("{kind} {} {}", call.name, args.join(" "))
    }

    fn expr_shape(expr: &Expr) -> String {
        let list = |exprs: &[Expr]| exprs.iter().map(expr_shape).collect::<Vec<_>>().join(" ");
        match expr {
            Expr::Unit(_) => "()".into(),
            Expr::BoolConstant(b, _) => format!("{b}"),
            Expr::IntegerConstant(i, _) => format!("{i}"),
            Expr::FloatConstant(f, _) => format!("{}f", **f),
            Expr::StringConstant(s, _) => format!("{s:?}"),
            Expr::DynamicConstant(value, _) => format!("const:{}", value.type_name()),
            Expr::InterpolatedString(parts, _) => format!("(interpolated {})", list(parts)),
            Expr::Variable(var, _, _) => format!("${}", var.1),
            Expr::And(operands, _) => format!("(and {})", list(operands)),
            Expr::Or(operands, _) => format!("(or {})", list(operands)),
            Expr::Coalesce(operands, _) => format!("(?? {})", list(operands)),
            Expr::FnCall(call, _) => format!("({})", call_shape(call)),
            Expr::Map(map, _) => {
                let entries: Vec<String> = map
                    .0
                    .iter()
                    .map(|(name, value)| format!("{}: {}", name.name, expr_shape(value)))
                    .collect();
                format!("#{{{}}}", entries.join(", "))
            }
            Expr::Stmt(block) => format!(
                "(block {})",
                block
                    .statements()
                    .iter()
                    .map(stmt_shape)
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Expr::Dot(chain, flags, _) => format!(
                "({} {} {})",
                if flags.contains(ASTFlags::NEGATED) {
                    "?."
                } else {
                    "."
                },
                expr_shape(&chain.lhs),
                expr_shape(&chain.rhs)
            ),
            Expr::Index(index, _, _) => {
                format!(
                    "(index {} {})",
                    expr_shape(&index.lhs),
                    expr_shape(&index.rhs)
                )
            }
            Expr::Property(prop, _) => format!("prop:{}", prop.2),
            Expr::MethodCall(call, _) => format!("(method {})", call_shape(call)),
            other => panic!("{AST_CHANGED}: unexpected expression {other:?}"),
        }
    }

    const AST_CHANGED: &str = "rhai's AST changed: re-check engine::native before upgrading";

    /// The fast path walks Rhai's `internals` AST, which has no semver
    /// promise (hence `rhai = "=…"` in Cargo.toml). This parses a `check`
    /// using every construct the compiler models and pins the statement
    /// and expression variants Rhai gives for each: an upgrade that changes
    /// them fails here, not as a silent fall-back to the interpreter or a
    /// wrong answer.
    #[test]
    fn rhai_ast_shapes_are_those_the_fast_path_models() {
        let engine = build_engine(&Limits::default());
        let source = r#"
const PARAMS = #{ n: 3 };
const LABELS = #{ low: "few" };
fn check(row, params) {
    let a = row.member_count;
    if a == () { return; }
    let labels = LABELS;
    let t = row?.group_type ?? "";
    { let b = -a; if !(b < 0) { return #{ message: `b ${b}`, n: 1.5 }; } }
    let s = if row.has("Group Type") && t.to_lower().len() > 2 || a == 0 { row["Group Type"] } else { format_bytes(a) };
    contains(t, "x");
    if a > params.n { throw "no"; } else { a + 1 }
}
"#;
        let rule = compile_rule(&engine, Path::new("t.rhai"), source).unwrap();
        let (_, statements) = check_body(&rule).expect("check's body");
        let shapes: Vec<String> = statements.iter().map(stmt_shape).collect();
        let expected = [
            "(let a (. $row prop:member_count))",
            "(if (op == $a ()) [(return -)] [])",
            "(let labels const:map)",
            "(let t (?? (?. $row prop:group_type) \"\"))",
            "{(let b (op - $a)) (if (op ! (op < $b 0)) [(return #{message: (interpolated \"b \" $b), n: 1.5f})] [])}",
            "(let s (block (if (or (and (. $row (method call has \"Group Type\")) (op > (. $t (. (method call to_lower ) (method call len ))) 2)) (op == $a 0)) [(expr (index $row \"Group Type\"))] [(stmt-call format_bytes $a)])))",
            "(stmt-call contains $t \"x\")",
            "(if (op > $a (. $params prop:n)) [(throw \"no\")] [(stmt-op + $a 1)])",
        ];
        assert_eq!(shapes, expected, "{AST_CHANGED}");
        // Every statement compiles up to the `throw` of the last one.
        let error = NativeCheck::compile(&engine, &rule).unwrap_err();
        assert_eq!(error, "`throw`", "{AST_CHANGED}");
    }

    #[test]
    fn large_rules_stay_in_the_interpreter_under_a_small_operation_limit() {
        let engine = build_engine(&Limits {
            max_operations: 20,
            ..Limits::default()
        });
        let source = include_str!("../../rules/inactive-groups.rhai");
        let rule = compile_rule(&engine, Path::new("t.rhai"), source).unwrap();
        let error = NativeCheck::compile(&engine, &rule).unwrap_err();
        assert!(error.contains("max_operations"), "{error}");
    }
}
