use tune_runtime::search_space;

search_space! {
    fn config() {}
}

fn main() {}
