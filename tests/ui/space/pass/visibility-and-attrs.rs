mod spaces {
    tune_runtime::search_space! {
        /// A crate-visible space with one private field.
        #[derive(Hash, Eq)]
        #[serde(rename_all = "camelCase")]
        pub(crate) struct Config {
            batch_size: u32 = grid([32, 64]),
            #[serde(rename = "w")]
            warm_up: u32 = sample_from(|c: &Self| c.batch_size / 8),
            pub(self) secret: u8 = 7,
        }

        /// Empty spaces are allowed.
        pub struct Empty {}
    }
}

fn main() {
    use rand::SeedableRng;
    use tune_runtime::Space;
    let c = spaces::Config::sample(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
    assert_eq!(c.warm_up, c.batch_size / 8);
    let json = c.to_json_value();
    assert!(json.get("batchSize").is_some());
    assert!(json.get("w").is_some());
    assert_eq!(spaces::Config::from_json_str(r#"{"batchSize": 64, "secret": 7}"#).unwrap().warm_up, 8);
    assert_eq!(spaces::Empty::num_dims(), 0);
    assert_eq!(spaces::Empty::grid_size(), 1);
}
