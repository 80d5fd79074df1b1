"""Optuna's RDB storage on PostgreSQL: P processes on one study of N trials of a trivial
objective with TPE, one trial at a time per process; the wall time from the start of the
first process to the end of the last. The same shape as
`cargo bench -p tune-runtime --features postgres --bench postgres_experiment -- tpe`.

    python3 -m venv /tmp/optuna-venv
    /tmp/optuna-venv/bin/pip install optuna==5.0.0 psycopg2-binary
    /tmp/optuna-venv/bin/python tune-runtime/benches/optuna/distributed.py \
        postgresql+psycopg2://root@127.0.0.1:5432/tune_optuna_bench [P] [N]

The database must exist (`createdb tune_optuna_bench`); the study is created fresh (an old
one of the same name is deleted first). The objective `x * k + 1` (x uniform in [0, 1], k
an integer in [1, 9]) is the bench's trainable after its one step.
"""

import os
import subprocess
import sys
import time

STUDY = "distributed-tpe"


def worker(url, trials):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name=STUDY, storage=url, sampler=optuna.samplers.TPESampler())

    def objective(t):
        x = t.suggest_float("x", 0.0, 1.0)
        k = t.suggest_int("k", 1, 9)
        return x * k + 1

    # Stops when the study holds `trials` finished trials, whichever process ran them.
    done = optuna.study.MaxTrialsCallback(trials, states=None)
    study.optimize(objective, n_trials=trials, callbacks=[done])


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main():
    url = sys.argv[1]
    processes = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    trials = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        optuna.delete_study(study_name=STUDY, storage=url)
    except KeyError:
        pass
    optuna.create_study(study_name=STUDY, storage=url, direction="minimize")
    load = load_average()
    start = time.time()
    procs = [
        subprocess.Popen([sys.executable, __file__, "--worker", url, str(trials)])
        for _ in range(processes)
    ]
    codes = [p.wait() for p in procs]
    wall = time.time() - start
    assert all(c == 0 for c in codes), codes
    study = optuna.load_study(study_name=STUDY, storage=url)
    n = len(study.trials)
    print(
        f"optuna {optuna.__version__} (RDB storage, sqlalchemy {__import__('sqlalchemy').__version__}): "
        f"{processes} processes, {n} trials, TPE: wall {wall:.2f} s ({n / wall:.0f} trials/s); "
        f"best {study.best_value:.4f}; load average before {load}, after {load_average()}"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], int(sys.argv[3]))
    else:
        main()
