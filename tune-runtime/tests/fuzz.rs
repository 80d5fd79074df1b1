//! Property tests (bounded, seconds in CI) of everything that reads untrusted bytes: the
//! journal reader, the config JSON reader and checkpoint loading. Any input gives a value
//! or an error: never a panic, never unbounded memory.
//!
//! It lives in this package (not `tune-tests`) so that proptest's own `Config` type does not
//! change how rustc names types in the trybuild UI tests of `tune-tests`.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use tune_runtime::prelude::*;
use tune_runtime::storage::{
    JOURNAL_FILE, MANIFEST_FILE, META_FILE, STATE_FILE, read_journal, read_meta, restore_checkpoint,
};

search_space! {
    pub struct Fz {
        lr: f64 = loguniform(1e-4, 1e-1),
        layers: usize = choice([1, 2, 3]),
        name: String = choice(["a", "b"]),
        depth: i64 = grid([2, 4]),
    }
}

#[derive(Metrics, Debug, Clone)]
pub struct Loss {
    loss: f64,
}

#[trainable(config = Fz, metrics = Loss, test = false)]
#[derive(Debug)]
pub struct Net {
    iter: u64,
    acc: f64,
}

impl Trainable for Net {
    fn setup(_config: &Fz, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Net { iter: 0, acc: 0.0 })
    }
    fn step(&mut self) -> TrainResult<Loss> {
        self.iter += 1;
        Ok(Loss { loss: self.acc })
    }
}

const VALID: &str = concat!(
    r#"{"type":"experiment","version":2,"name":"exp","trainable":"Net","metrics":["loss"],"seed":1,"started":0}"#,
    "\n",
    r#"{"type":"trial","trial":0,"id":"00000","dir":"Net_00000","config":{"lr":0.01,"layers":2,"name":"a","depth":2}}"#,
    "\n",
    r#"{"type":"result","trial":0,"v":[1.5,1,0.1,0.1,17]}"#,
    "\n",
    r#"{"type":"checkpoint","trial":0,"iteration":1,"path":"Net_00000/checkpoint_1"}"#,
    "\n",
    r#"{"type":"failure","trial":0,"attempt":1,"error":"boom"}"#,
    "\n",
    r#"{"type":"rollback","trial":0,"iteration":0}"#,
    "\n",
    r#"{"type":"status","trial":0,"status":"TERMINATED"}"#,
    "\n",
);

fn cases() -> ProptestConfig {
    ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn journal_reader_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(JOURNAL_FILE), &bytes).unwrap();
        let _ = read_journal(&dir.path().join(JOURNAL_FILE));
        let _ = Analysis::<Fz, Loss>::from_dir(dir.path());
    }

    #[test]
    fn journal_reader_takes_any_mutation_of_a_valid_journal(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = VALID.as_bytes().to_vec();
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(JOURNAL_FILE), &bytes).unwrap();
        let _ = read_journal(&dir.path().join(JOURNAL_FILE));
        let _ = Analysis::<Fz, Loss>::from_dir(dir.path());
    }

    #[test]
    fn config_reader_takes_any_text(text in ".{0,200}") {
        let _ = Fz::from_json_str(&text);
    }

    #[test]
    fn config_reader_takes_any_json_object(
        lr in prop_oneof![any::<f64>().prop_map(|f| f.to_string()), Just("\"x\"".to_string()), Just("null".to_string())],
        layers in any::<i64>(),
        name in "[a-c\"\\\\]{0,3}",
        depth in any::<i64>(),
        extra in proptest::option::of("[a-z]{1,4}"),
    ) {
        let mut json = format!(
            r#"{{"lr": {lr}, "layers": {layers}, "name": "{name}", "depth": {depth}"#
        );
        if let Some(k) = extra {
            json.push_str(&format!(r#", "{k}": 1"#));
        }
        json.push('}');
        if let Ok(c) = Fz::from_json_str(&json) {
            // Whatever parses is inside its domains.
            prop_assert!(c.lr >= 1e-4 && c.lr <= 1e-1);
            prop_assert!([1, 2, 3].contains(&c.layers));
            prop_assert!([2, 4].contains(&c.depth));
        }
    }

    #[test]
    fn checkpoint_loading_takes_any_bytes(
        state in proptest::collection::vec(any::<u8>(), 0..512),
        meta in proptest::collection::vec(any::<u8>(), 0..256),
        manifest in proptest::collection::vec(any::<u8>(), 0..256),
        valid_meta in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join(STATE_FILE), &state).unwrap();
        let meta = if valid_meta {
            br#"{"trainable":"Net","iteration":3,"time_total_s":1.0}"#.to_vec()
        } else {
            meta
        };
        std::fs::write(d.join(META_FILE), &meta).unwrap();
        std::fs::write(d.join(MANIFEST_FILE), &manifest).unwrap();
        prop_assert!(read_meta(d).is_err(), "an arbitrary manifest never verifies");
        let mut net = Net { iter: 7, acc: 1.0 };
        if restore_checkpoint(&mut net, d).is_err() {
            prop_assert_eq!(net.iter, 7, "a failed restore changes nothing");
        }
    }
}
