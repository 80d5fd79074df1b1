"""Optuna's samplers on the problems of `benches/searchers.rs`, same protocol.

Single objective (`regret`): Branin, Hartmann6, Rosenbrock4, Ackley5 and Mixed, 100
sequential trials, seeds 0..N-1, median final regret; TPE (default `TPESampler`) and
CMA-ES (default `CmaEsSampler`, which rejects the categorical dimension of Mixed).
Several objectives (`mo`): ZDT1 and ZDT2 (30-D) and Branin with a constraint, 200 trials,
10 seeds, hypervolume of the feasible trials against a fixed reference point; NSGA-II
and TPE with their defaults.

    python3 tune-runtime/benches/optuna/compare.py regret --seeds 30
    python3 tune-runtime/benches/optuna/compare.py mo --seeds 10

`--finals FILE` (regret) also writes every seed's final regret as CSV lines
`function,searcher,seed,final` (the format of the Rust benchmark's `--finals`), for
`stats.py`; `--samplers tpe` or `--samplers cmaes` runs one of the two; `--first K`
starts at seed K (to add seeds to an earlier run).
"""

import math
import warnings
import statistics
import sys
import time

import numpy as np
import optuna

optuna.logging.set_verbosity(optuna.logging.ERROR)
# `constraints_func` is deprecated in 5.0 (for `Trial.set_constraint`) but still works.
warnings.filterwarnings("ignore", category=FutureWarning)
PI = math.pi


def branin(x1, x2):
    b = 5.1 / (4 * PI * PI)
    return (x2 - b * x1 * x1 + 5 / PI * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * PI)) * math.cos(x1) + 10


A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
P = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
]
ALPHA = [1.0, 1.2, 3.0, 3.2]


def hartmann6(x):
    return -sum(ALPHA[i] * math.exp(-sum(A[i][j] * (x[j] - P[i][j]) ** 2 for j in range(6))) for i in range(4))


def rosenbrock(x):
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(3))


def ackley(x):
    d = len(x)
    s1 = sum(v * v for v in x) / d
    s2 = sum(math.cos(2 * PI * v) for v in x) / d
    return -20 * math.exp(-0.2 * math.sqrt(s1)) - math.exp(s2) + 20 + math.e


def objective(name):
    if name == "Quadratic2":
        return 0.0, lambda t: t.suggest_float("x", -5, 5) ** 2 + t.suggest_float("y", -5, 5) ** 2
    if name == "Branin":
        return 0.397887357729738, lambda t: branin(t.suggest_float("x1", -5, 10), t.suggest_float("x2", 0, 15))
    if name == "Hartmann6":
        return -3.32236801141551, lambda t: hartmann6([t.suggest_float(f"x{i}", 0, 1) for i in range(1, 7)])
    if name == "Rosenbrock4":
        return 0.0, lambda t: rosenbrock([t.suggest_float(f"x{i}", -2.048, 2.048) for i in range(1, 5)])
    if name == "Ackley5":
        return 0.0, lambda t: ackley([t.suggest_float(f"x{i}", -32.768, 32.768) for i in range(1, 6)])

    def mixed(t):
        x = t.suggest_float("x", -5, 5)
        lr = t.suggest_float("lr", 1e-4, 1, log=True)
        n = t.suggest_int("n", 0, 31)
        opt = t.suggest_categorical("opt", [0, 1, 2, 3])
        return (x - 1.5) ** 2 / 4 + (math.log10(lr) + 2) ** 2 + ((n - 23) / 6) ** 2 + [0, 0.5, 1, 2][opt]

    return 0.0, mixed


def regret(seeds, trials, finals_path=None, samplers=("tpe", "cmaes"), first=0, functions=None):
    out = open(finals_path, "w") if finals_path else None
    print(f"optuna {optuna.__version__}, {trials} trials, {seeds} seeds, sequential")
    print("| function | sampler | median final regret | after 50 | seconds |")
    print("|---|---|---|---|---|")
    for fn in functions or ["Branin", "Hartmann6", "Rosenbrock4", "Ackley5", "Mixed"]:
        opt, f = objective(fn)
        for sname in samplers:
            if sname == "cmaes" and fn == "Mixed":
                continue
            finals, halves = [], []
            start = time.time()
            for seed in range(first, first + seeds):
                sampler = optuna.samplers.TPESampler(seed=seed) if sname == "tpe" else optuna.samplers.CmaEsSampler(seed=seed)
                study = optuna.create_study(sampler=sampler)
                study.optimize(f, n_trials=trials)
                vals = [t.value for t in study.trials]
                finals.append(min(vals) - opt)
                halves.append(min(vals[:50]) - opt)
                if out:
                    out.write(f"{fn},{sname},{seed},{float(max(finals[-1], 0.0))!r}\n")
                    out.flush()
            print(f"| {fn} | {sname} | {statistics.median(finals):.4f} | {statistics.median(halves):.4f} | {time.time() - start:.1f} |", flush=True)


def zdt(x, which):
    f1 = x[0]
    g = 1 + 9 * sum(x[1:]) / (len(x) - 1)
    h = 1 - math.sqrt(f1 / g) if which == 1 else 1 - (f1 / g) ** 2
    return f1, g * h


def hv2(points, ref):
    pts = sorted(p for p in points if p[0] < ref[0] and p[1] < ref[1])
    area, y = 0.0, ref[1]
    for p in pts:
        if p[1] < y:
            area += (ref[0] - p[0]) * (y - p[1])
            y = p[1]
    return area


# Reference points: ZDT f2 is up to 10 early on (30 dimensions), hence 7 rather than 1.1.
MO_REF = {"ZDT1": (1.1, 7.0), "ZDT2": (1.1, 7.0), "BraninC": (310.0, 230.0)}


def mo(seeds, trials):
    print(f"optuna {optuna.__version__}, {trials} trials, {seeds} seeds, sequential; hypervolume")
    print("| problem | sampler | median hypervolume | seconds |")
    print("|---|---|---|---|")
    for prob in ["ZDT1", "ZDT2", "BraninC"]:
        for sname in ["nsga2", "tpe"]:
            hvs = []
            start = time.time()
            for seed in range(seeds):
                cons = None
                if prob == "BraninC":
                    cons = lambda t: [t.user_attrs["c"]]
                if sname == "nsga2":
                    sampler = optuna.samplers.NSGAIISampler(seed=seed, constraints_func=cons)
                else:
                    sampler = optuna.samplers.TPESampler(seed=seed, constraints_func=cons)
                study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)

                def f(t):
                    if prob == "BraninC":
                        x1 = t.suggest_float("x1", -5, 10)
                        x2 = t.suggest_float("x2", 0, 15)
                        # Branin, and the distance to (2.5, 7.5); feasible inside a disc.
                        t.set_user_attr("c", (x1 - 2.5) ** 2 + (x2 - 7.5) ** 2 - 50.0)
                        return branin(x1, x2), (x1 - 10) ** 2 + (x2 - 15) ** 2 / 4
                    x = [t.suggest_float(f"x{i}", 0, 1) for i in range(30)]
                    return zdt(x, 1 if prob == "ZDT1" else 2)

                study.optimize(f, n_trials=trials)
                pts = [t.values for t in study.trials if prob != "BraninC" or t.user_attrs["c"] <= 0]
                hvs.append(hv2(pts, MO_REF[prob]))
            print(f"| {prob} | {sname} | {statistics.median(hvs):.4f} | {time.time() - start:.1f} |", flush=True)


def arg(name, default):
    return int(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "regret"
    if what == "regret":
        finals = sys.argv[sys.argv.index("--finals") + 1] if "--finals" in sys.argv else None
        samplers = sys.argv[sys.argv.index("--samplers") + 1].split(",") if "--samplers" in sys.argv else ["tpe", "cmaes"]
        functions = sys.argv[sys.argv.index("--functions") + 1].split(",") if "--functions" in sys.argv else None
        regret(arg("--seeds", 30), arg("--trials", 100), finals, samplers, arg("--first", 0), functions)
    else:
        mo(arg("--seeds", 10), arg("--trials", 200))
