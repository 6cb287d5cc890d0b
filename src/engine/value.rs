//! The values the fast path computes with, and row properties are read as.
//!
//! A [`Value`] borrows a row's text where it can, so reading a cell does
//! not copy it; [`Value::into_dynamic`] gives the interpreter's form.

use std::borrow::Cow;

use rhai::{Dynamic, Map};

/// A script value the fast path models.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Value<'a> {
    /// `()`: no value, as a blank cell reads.
    #[default]
    Unit,
    /// A Rhai `bool`.
    Bool(bool),
    /// A Rhai `int`.
    Int(i64),
    /// A Rhai `float`.
    Float(f64),
    /// A Rhai string, borrowed from the row where it can be.
    Str(Cow<'a, str>),
    /// An object map, as `check` returns a finding: `#{ message, … }`.
    Map(Vec<(Cow<'a, str>, Value<'a>)>),
}

impl Value<'_> {
    /// The same value as the interpreter holds it.
    pub fn into_dynamic(self) -> Dynamic {
        match self {
            Value::Unit => Dynamic::UNIT,
            Value::Bool(b) => Dynamic::from_bool(b),
            Value::Int(i) => Dynamic::from_int(i),
            Value::Float(f) => Dynamic::from_float(f),
            Value::Str(s) => Dynamic::from(rhai::ImmutableString::from(s.into_owned())),
            Value::Map(entries) => Dynamic::from_map(
                entries
                    .into_iter()
                    .map(|(name, value)| (name.as_ref().into(), value.into_dynamic()))
                    .collect::<Map>(),
            ),
        }
    }

    /// A constant from the script or the parameters; `None` for values
    /// the fast path does not model (arrays, maps, chars, …).
    pub(super) fn from_dynamic(value: &Dynamic) -> Option<Value<'static>> {
        if value.is_unit() {
            Some(Value::Unit)
        } else if let Ok(b) = value.as_bool() {
            Some(Value::Bool(b))
        } else if let Ok(i) = value.as_int() {
            Some(Value::Int(i))
        } else if let Ok(f) = value.as_float() {
            Some(Value::Float(f))
        } else if value.is_string() {
            Some(Value::Str(Cow::Owned(value.clone().into_string().ok()?)))
        } else if value.is_map() {
            let map = value.read_lock::<Map>()?;
            let entries = map
                .iter()
                .map(|(name, item)| {
                    Some((Cow::Owned(name.to_string()), Value::from_dynamic(item)?))
                })
                .collect::<Option<Vec<_>>>()?;
            Some(Value::Map(entries))
        } else {
            None
        }
    }

    /// Total text length and number of map entries inside, as the
    /// interpreter counts them against its size limits.
    pub(super) fn data_size(&self) -> (usize, usize) {
        match self {
            Value::Str(s) => (s.len(), 0),
            Value::Map(entries) => entries.iter().fold((0, 0), |(text, items), (_, v)| {
                let (t, i) = v.data_size();
                (text + t, items + i + 1)
            }),
            _ => (0, 0),
        }
    }

    /// Whether dropping the value frees nothing: `()`, a bool, a number
    /// or borrowed text.
    #[inline(always)]
    pub(super) fn owns_nothing(&self) -> bool {
        matches!(
            self,
            Value::Unit
                | Value::Bool(_)
                | Value::Int(_)
                | Value::Float(_)
                | Value::Str(Cow::Borrowed(_))
        )
    }

    /// A copy that borrows instead of cloning text.
    pub(super) fn borrowed(&self) -> Value<'_> {
        match self {
            Value::Unit => Value::Unit,
            Value::Bool(b) => Value::Bool(*b),
            Value::Int(i) => Value::Int(*i),
            Value::Float(f) => Value::Float(*f),
            Value::Str(s) => Value::Str(Cow::Borrowed(s)),
            Value::Map(entries) => Value::Map(
                entries
                    .iter()
                    .map(|(name, value)| (Cow::Borrowed(name.as_ref()), value.borrowed()))
                    .collect(),
            ),
        }
    }
}
