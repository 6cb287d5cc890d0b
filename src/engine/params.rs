//! A rule's parameters, as its calls see them.

use std::sync::Arc;

use rhai::{Dynamic, Map};

/// A rule's parameters.
#[derive(Clone, Debug)]
pub struct Params(pub Arc<Map>);

impl Params {
    /// The value one call gets: its own copy of the map. A map, because
    /// `params.days` is then Rhai's built-in property access (a custom type
    /// would go through a failed getter lookup and an indexer fallback on
    /// every read); a copy, because a shared map would let one row's call
    /// change what the next row sees (Rhai does not keep a shared value
    /// read-only once it is a function argument).
    pub fn script_value(&self) -> Dynamic {
        Dynamic::from_map((*self.0).clone())
    }
}
