//! The macros' output names only `::core` and the runtime's `__private`: shadowing the
//! prelude around them changes nothing.
#![allow(dead_code, non_camel_case_types, unused_macros, clippy::all)]

mod support;

use ::tune_runtime::{Metrics, Session, Trainable, TrainableSpec, TrialContext, trainable};
use support::config::GuessConfig;

// Everything a careless expansion could pick up instead of the real thing.
struct Result;
struct Option;
struct Vec;
struct String;
struct Box;
struct Ok;
struct Err;
struct Some;
struct None;
struct core;
struct std;
struct serde;
struct tune_runtime;
trait Default {}
trait Clone {}
trait Serialize {}
trait Deserialize {}
trait Iterator {}
macro_rules! panic {
    ($($t:tt)*) => {
        compile_error!("shadowed panic!")
    };
}
macro_rules! unimplemented {
    ($($t:tt)*) => {
        compile_error!("shadowed unimplemented!")
    };
}

type R<T> = ::core::result::Result<T, ::tune_runtime::TrainError>;

#[derive(Metrics, Debug, ::core::clone::Clone)]
struct HMetrics {
    loss: f64,
    step: u64,
}

#[trainable(config = GuessConfig, metrics = HMetrics, resources(cpu = |c: &GuessConfig| c.workers, custom("x" = 1)))]
struct HNet {
    step: u64,
    history: ::std::vec::Vec<f64>,
    #[checkpoint(skip)]
    name: ::std::string::String,
}

impl Trainable for HNet {
    fn setup(config: &GuessConfig, _: &TrialContext) -> R<Self> {
        R::Ok(HNet { step: 0, history: ::std::vec::Vec::new(), name: config.guess.to_string() })
    }
    fn step(&mut self) -> R<HMetrics> {
        self.step += 1;
        self.history.push(self.step as f64);
        R::Ok(HMetrics { loss: 1.0 / self.history.len() as f64, step: self.step })
    }
}

#[trainable(config = GuessConfig, metrics = HMetrics)]
struct HTuple(u64, #[checkpoint(skip)] u64);

impl Trainable for HTuple {
    fn setup(_: &GuessConfig, _: &TrialContext) -> R<Self> {
        R::Ok(HTuple(0, 1))
    }
    fn step(&mut self) -> R<HMetrics> {
        self.0 += self.1;
        R::Ok(HMetrics { loss: self.0 as f64, step: self.0 })
    }
}

struct HData(u64);

fn h_small_config() -> GuessConfig {
    GuessConfig { guess: 2, workers: 1 }
}

fn h_small_data() -> HData {
    HData(7)
}

#[trainable(config = GuessConfig, metrics = HMetrics, data = HData, test_config = h_small_config, test_data = h_small_data, test_steps = 2)]
struct HBinary {
    #[checkpoint(binary)]
    weights: ::std::vec::Vec<f32>,
    #[checkpoint(binary)]
    moments: [f64; 2],
    step: u64,
}

impl Trainable for HBinary {
    fn setup(config: &GuessConfig, ctx: &TrialContext) -> R<Self> {
        let data = Self::data(ctx)?;
        R::Ok(HBinary {
            weights: ::std::vec![data.0 as f32; 3],
            moments: [config.guess as f64; 2],
            step: 0,
        })
    }
    fn step(&mut self) -> R<HMetrics> {
        self.step += 1;
        self.weights[0] += 1.0;
        self.moments[1] *= 0.5;
        R::Ok(HMetrics { loss: f64::from(self.weights[0]) + self.moments[1], step: self.step })
    }
}

#[trainable(data = HData, test_data = h_small_data)]
fn h_files(_: &GuessConfig, session: &mut Session<HMetrics>) -> R<()> {
    let data = HFiles::data(session.context())?;
    let mut step: u64 = match session.restored_dir() {
        ::core::option::Option::Some(dir) => {
            ::std::fs::read_to_string(dir.join("step"))?.parse()?
        }
        ::core::option::Option::None => data.0,
    };
    loop {
        step += 1;
        session.report_with(HMetrics { loss: 1.0, step }, |dir| {
            ::std::fs::write(dir.join("step"), step.to_string())?;
            R::Ok(())
        })?;
    }
}

#[trainable(resources(gpu = 0.5))]
fn h_train(config: &GuessConfig, session: &mut Session<HMetrics>) -> R<()> {
    let mut step: u64 = session.restored_state()?.unwrap_or(0);
    loop {
        step += 1;
        session.checkpoint(&step)?;
        session.report(HMetrics { loss: config.guess as f64 / step as f64, step })?;
    }
}

#[test]
fn shadowed_prelude_changes_nothing() {
    assert_eq!(<HMetrics as Metrics>::NAMES, &["loss", "step"]);
    assert_eq!(HMetrics::STEP.name(), "step");
    assert_eq!(<HNet as TrainableSpec>::NAME, "HNet");
    assert_eq!(<HTrain as TrainableSpec>::NAME, "h_train");
    let c = GuessConfig { guess: 3, workers: 2 };
    assert_eq!(HNet::resources(&c).cpu, 2.0);
    assert_eq!(HTrain::resources(&c).gpu, 0.5);
    ::tune_runtime::check::validate_save_restore::<HNet>().expect("HNet");
    ::tune_runtime::check::validate_save_restore::<HTuple>().expect("HTuple");
    ::tune_runtime::check::validate_save_restore::<HTrain>().expect("HTrain");
}
