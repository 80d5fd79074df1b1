use tune_runtime::search_space;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Schedule(u32);

search_space! {
    struct Config {
        batch: u32 = grid([32, 64]),
        schedule: Schedule = sample_from(|c: &Self| Schedule(c.batch / 8)),
    }
}

fn main() {}
