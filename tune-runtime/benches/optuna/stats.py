"""Compare two sets of per-seed final regrets (CSV lines `function,searcher,seed,final`,
as written by `compare.py --finals` and by the Rust benchmark's `--finals`).

    python3 tune-runtime/benches/optuna/stats.py A.csv B.csv [--label-a ours --label-b optuna]

For every (function, searcher) in both files: the two medians (over all the seeds of
each file), their ratio A/B, a 95% bootstrap interval of that ratio (the seeds of each
side resampled independently, 10,000 times, fixed seed), and a sign test over the seeds
present in both (how often A < B, ties
left out; two-sided binomial p-value). A ratio whose interval contains 1 and a sign-test
p-value above 0.05 is not distinguishable from noise at this number of seeds.
Only the standard library is needed.
"""

import csv
import math
import random
import statistics
import sys


def load(path):
    data = {}
    with open(path) as f:
        for row in csv.reader(f):
            if len(row) != 4:
                continue
            fn, searcher, seed, final = row
            data.setdefault((fn, searcher), {})[int(seed)] = float(final)
    return data


def sign_test(wins, losses):
    """Two-sided binomial p-value of `wins` against `losses` under p = 1/2."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def bootstrap_ratio(a, b, reps=10_000, seed=1):
    rng = random.Random(seed)
    ratios = []
    for _ in range(reps):
        ma = statistics.median(rng.choices(a, k=len(a)))
        mb = statistics.median(rng.choices(b, k=len(b)))
        ratios.append(ma / mb if mb > 0 else math.inf)
    ratios.sort()
    return ratios[int(0.025 * reps)], ratios[int(0.975 * reps) - 1]


def main():
    args = [a for a in sys.argv[1:]]
    label = {"a": "A", "b": "B"}
    for side in ("a", "b"):
        flag = f"--label-{side}"
        if flag in args:
            i = args.index(flag)
            label[side] = args[i + 1]
            del args[i : i + 2]
    a, b = load(args[0]), load(args[1])
    la, lb = label["a"], label["b"]
    print(f"| function | searcher | seeds | median {la} | median {lb} | {la}/{lb} | 95% bootstrap | {la} better on | sign test p |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key in a:
        if key not in b:
            continue
        xa, xb = a[key], b[key]
        seeds = sorted(set(xa) & set(xb))
        # Medians and the bootstrap over every seed of each side; the sign test over the
        # seeds both have.
        va, vb = list(xa.values()), list(xb.values())
        ma, mb = statistics.median(va), statistics.median(vb)
        lo, hi = bootstrap_ratio(va, vb)
        wins = sum(1 for s in seeds if xa[s] < xb[s])
        losses = sum(1 for s in seeds if xa[s] > xb[s])
        ratio = ma / mb if mb > 0 else math.inf
        print(
            f"| {key[0]} | {key[1]} | {len(va)}/{len(vb)} | {ma:.4g} | {mb:.4g} | {ratio:.3f} | "
            f"{lo:.2f}-{hi:.2f} | {wins}/{wins + losses} | {sign_test(wins, losses):.3f} |"
        )


if __name__ == "__main__":
    main()
