//! Saved state of searchers and schedulers: the typed error of a restore, and the serde
//! helpers their derived state structs share.
//!
//! Each searcher and scheduler saves a `#[derive(Serialize, Deserialize)]` struct of its
//! own inside an envelope `{"kind": "<name>", "state": {...}}`, so that a state saved by
//! another searcher or scheduler is refused by name. Floats that may be NaN or infinite
//! go through [`nonfinite`], since JSON numbers cannot hold them.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Why a searcher or scheduler cannot restore a saved state
/// ([`Searcher::restore_state`](crate::searcher::Searcher::restore_state),
/// [`Scheduler::restore_state`](crate::scheduler::Scheduler::restore_state)). Each message says what
/// to change.
///
/// ```
/// use tune_runtime::StateError;
/// let e = StateError::WrongKind { expected: "Tpe", found: "GpBo".into() };
/// assert!(e.to_string().contains("saved by GpBo, not Tpe"));
/// ```
#[derive(Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The state was saved by another searcher or scheduler.
    #[error(
        "the state was saved by {found}, not {expected}; resume with the searcher and \
         scheduler of the run that saved it"
    )]
    WrongKind {
        /// The searcher or scheduler restoring.
        expected: &'static str,
        /// The one that saved the state (empty when the state names none).
        found: String,
    },
    /// The JSON does not have the shape of the state.
    #[error("the saved {owner} state is malformed at `{path}`: {message}")]
    Malformed {
        /// The searcher or scheduler restoring.
        owner: &'static str,
        /// Where in the JSON (`trials[0].scores`, `.` for the top).
        path: String,
        /// What is wrong there.
        message: String,
    },
    /// The state is well formed but does not fit how this searcher or scheduler was built.
    #[error("{owner}: {message}; build it with the options of the run that saved the state")]
    Mismatch {
        /// The searcher or scheduler restoring.
        owner: &'static str,
        /// What does not fit.
        message: String,
    },
}

/// `state` inside the envelope that names its `kind`.
pub(crate) fn save<T: Serialize>(kind: &str, state: &T) -> Value {
    // Serializing a derived struct of numbers, strings and sequences into a `Value` cannot
    // fail; `Null` would only make a resume replay the whole experiment instead.
    match serde_json::to_value(state) {
        Ok(v) => serde_json::json!({ "kind": kind, "state": v }),
        Err(_) => Value::Null,
    }
}

/// The state of `kind` saved by [`save`].
pub(crate) fn load<T: DeserializeOwned>(kind: &'static str, value: Value) -> Result<T, StateError> {
    let Value::Object(mut map) = value else {
        return Err(malformed(kind, ".", "not a JSON object"));
    };
    match map.get("kind").and_then(Value::as_str) {
        Some(k) if k == kind => {}
        found => {
            return Err(StateError::WrongKind {
                expected: kind,
                found: found.unwrap_or_default().to_string(),
            });
        }
    }
    let state = map.remove("state").unwrap_or(Value::Null);
    serde_path_to_error::deserialize(state).map_err(|e| {
        let path = e.path().to_string();
        malformed(kind, &path, &e.into_inner().to_string())
    })
}

pub(crate) fn malformed(owner: &'static str, path: &str, message: &str) -> StateError {
    StateError::Malformed { owner, path: path.to_string(), message: message.to_string() }
}

pub(crate) fn mismatch(owner: &'static str, message: impl Into<String>) -> StateError {
    StateError::Mismatch { owner, message: message.into() }
}

/// A serde `with` module for floats that may be NaN or infinite, alone or inside
/// vectors, options, pairs and nested vectors: finite values are JSON numbers, the others
/// the strings `"NaN"`, `"inf"` and `"-inf"`.
///
/// `#[serde(with = "crate::state::nonfinite")] scores: Vec<f64>`
pub(crate) mod nonfinite {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// One float as it is written.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Float(pub(crate) f64);

    impl Serialize for Float {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let x = self.0;
            if x.is_finite() {
                s.serialize_f64(x)
            } else if x.is_nan() {
                s.serialize_str("NaN")
            } else if x > 0.0 {
                s.serialize_str("inf")
            } else {
                s.serialize_str("-inf")
            }
        }
    }

    impl<'de> Deserialize<'de> for Float {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            #[derive(Deserialize)]
            #[serde(untagged)]
            enum Repr {
                Num(f64),
                Text(String),
                // Older states wrote NaN as `null`.
                Null(()),
            }
            match Repr::deserialize(d)? {
                Repr::Num(x) => Ok(Float(x)),
                Repr::Null(()) => Ok(Float(f64::NAN)),
                Repr::Text(t) => match t.as_str() {
                    "NaN" => Ok(Float(f64::NAN)),
                    "inf" => Ok(Float(f64::INFINITY)),
                    "-inf" => Ok(Float(f64::NEG_INFINITY)),
                    other => Err(serde::de::Error::custom(format!(
                        "expected a number, \"NaN\", \"inf\" or \"-inf\", found the string {other:?}"
                    ))),
                },
            }
        }
    }

    /// A type whose floats are written as [`Float`]s.
    pub(crate) trait Floats: Sized {
        type Repr: Serialize + for<'de> Deserialize<'de>;
        fn to_repr(&self) -> Self::Repr;
        fn from_repr(r: Self::Repr) -> Self;
    }

    impl Floats for f64 {
        type Repr = Float;
        fn to_repr(&self) -> Float {
            Float(*self)
        }
        fn from_repr(r: Float) -> Self {
            r.0
        }
    }

    impl<T: Floats> Floats for Vec<T> {
        type Repr = Vec<T::Repr>;
        fn to_repr(&self) -> Self::Repr {
            self.iter().map(Floats::to_repr).collect()
        }
        fn from_repr(r: Self::Repr) -> Self {
            r.into_iter().map(T::from_repr).collect()
        }
    }

    impl<T: Floats> Floats for Option<T> {
        type Repr = Option<T::Repr>;
        fn to_repr(&self) -> Self::Repr {
            self.as_ref().map(Floats::to_repr)
        }
        fn from_repr(r: Self::Repr) -> Self {
            r.map(T::from_repr)
        }
    }

    impl<A: Floats, B: Floats> Floats for (A, B) {
        type Repr = (A::Repr, B::Repr);
        fn to_repr(&self) -> Self::Repr {
            (self.0.to_repr(), self.1.to_repr())
        }
        fn from_repr(r: Self::Repr) -> Self {
            (A::from_repr(r.0), B::from_repr(r.1))
        }
    }

    /// A trial index paired with floats.
    impl<F: Floats> Floats for (u32, F) {
        type Repr = (u32, F::Repr);
        fn to_repr(&self) -> Self::Repr {
            (self.0, self.1.to_repr())
        }
        fn from_repr(r: Self::Repr) -> Self {
            (r.0, F::from_repr(r.1))
        }
    }

    /// A step (or any count) paired with floats.
    impl<F: Floats> Floats for (u64, F) {
        type Repr = (u64, F::Repr);
        fn to_repr(&self) -> Self::Repr {
            (self.0, self.1.to_repr())
        }
        fn from_repr(r: Self::Repr) -> Self {
            (r.0, F::from_repr(r.1))
        }
    }

    pub(crate) fn serialize<T: Floats, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        v.to_repr().serialize(s)
    }

    pub(crate) fn deserialize<'de, T: Floats, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        T::Repr::deserialize(d).map(T::from_repr)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    struct S {
        #[serde(with = "nonfinite")]
        x: f64,
        #[serde(with = "nonfinite")]
        v: Vec<Vec<f64>>,
        #[serde(with = "nonfinite")]
        o: Option<f64>,
        n: u32,
    }

    #[test]
    fn non_finite_floats_round_trip() {
        let s = S {
            x: f64::NAN,
            v: vec![vec![1.5, f64::INFINITY], vec![f64::NEG_INFINITY]],
            o: Some(-0.25),
            n: 3,
        };
        let v = save("Test", &s);
        assert_eq!(v["state"]["v"], serde_json::json!([[1.5, "inf"], ["-inf"]]));
        let text = serde_json::to_string(&v).unwrap();
        let back: S = load("Test", serde_json::from_str(&text).unwrap()).unwrap();
        assert!(back.x.is_nan());
        assert_eq!(back.v[0], vec![1.5, f64::INFINITY]);
        assert_eq!(back.v[1], vec![f64::NEG_INFINITY]);
        assert_eq!((back.o, back.n), (Some(-0.25), 3));
    }

    #[test]
    fn errors_name_the_kind_and_the_path() {
        let v = save("Test", &S { x: 1.0, v: vec![], o: None, n: 1 });
        let e = load::<S>("Other", v.clone()).unwrap_err();
        assert_eq!(e, StateError::WrongKind { expected: "Other", found: "Test".into() });
        let mut bad = v.clone();
        bad["state"]["v"] = serde_json::json!([[1.0, "wide"]]);
        let e = load::<S>("Test", bad).unwrap_err();
        assert!(
            matches!(&e, StateError::Malformed { path, message, .. }
                if path == "v[0][1]" && message.contains("\"wide\"")),
            "{e}"
        );
        let mut missing = v;
        missing["state"].as_object_mut().unwrap().remove("n");
        let e = load::<S>("Test", missing).unwrap_err();
        assert!(e.to_string().contains("missing field `n`"), "{e}");
        let e = load::<S>("Test", serde_json::json!([1])).unwrap_err();
        assert!(e.to_string().contains("not a JSON object"), "{e}");
    }
}
