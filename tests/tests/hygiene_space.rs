//! `search_space!` expands correctly where the prelude's names are shadowed (after serde's
//! `test_gen.rs`): generated code must name only `::core` and the runtime's `__private`.

#![allow(dead_code, non_camel_case_types, clippy::disallowed_names)]

mod shadowed {
    use ::tune_runtime::{Space, search_space};
    use rand::SeedableRng;

    struct Result;
    struct Option;
    struct Ok;
    struct Err;
    struct Some;
    struct None;
    struct Vec;
    struct String;
    struct Box;
    struct Default;
    struct Clone;
    struct Debug;
    struct PartialEq;
    struct Sized;
    struct Into;
    struct From;
    struct Iterator;
    mod core {}
    mod std {}
    mod serde {}
    mod tune_runtime {}

    search_space! {
        crate = ::tune_runtime;
        /// Every domain kind.
        pub struct Everything {
            u: f64 = uniform(0.0, 1.0),
            qu: f32 = quniform(0.0, 1.0, 0.5),
            lu: f64 = loguniform(1e-3, 1.0),
            qlu: f64 = qloguniform(1.0, 10.0, 1.0),
            n: f32 = randn(0.0, 1.0),
            qn: f64 = qrandn(0.0, 1.0, 0.1),
            ri: i16 = randint(-3, 3),
            qri: u8 = qrandint(0, 200, 8),
            lri: u64 = lograndint(1, 100),
            ch: ::std::string::String = choice(["a", "b"]),
            g: u32 = grid([1, 2]),
            k: ::std::string::String = "fixed",
            c: bool = constant(true),
            d: u32 = sample_from(|c: &Self| c.g * 2),
            inner: Inner,
            pick: Pick,
        }

        pub struct Inner {
            x: i64 = grid([1, 2, 3]),
            s: ::std::string::String = sample_from(|c| ::std::format!("x{}", c.x)),
        }

        pub enum Pick {
            A { a: f64 = uniform(0.0, 1.0), b: u8 = choice([1, 2]) },
            B { inner: Inner },
            C,
        }
    }

    #[test]
    fn compiles_and_samples() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        ::core::assert_eq!(<Everything as Space>::grid_size(), 6);
        for i in 0..12 {
            let c = <Everything as Space>::sample_at(&mut rng, i);
            ::core::assert!(c.validate().is_ok(), "{c:?}");
            ::core::assert_eq!(c.d, c.g * 2);
            let x = c.encode();
            ::core::assert_eq!(
                <Everything as Space>::decode(&x).ok(),
                ::core::option::Option::Some(c.clone())
            );
            let json = c.to_json_value();
            ::core::assert_eq!(
                <Everything as Space>::from_json_value(json).ok(),
                ::core::option::Option::Some(c)
            );
        }
    }
}

mod default_path {
    // Without `crate = ...`: the runtime path is found through proc-macro-crate.
    struct Result;
    struct Option;

    tune_runtime::search_space! {
        pub(crate) struct Plain {
            x: f64 = uniform(0.0, 1.0),
        }
    }

    #[test]
    fn resolves_the_runtime() {
        use rand::SeedableRng;
        use tune_runtime::Space;
        let c = Plain::sample(&mut rand_chacha::ChaCha8Rng::seed_from_u64(1));
        ::core::assert!(c.validate().is_ok());
    }
}
