"""Are two evalkit result stores the same results? Everything but what names a run (ids, times, log paths, the
code's commit and version, the config hash) is compared, row by row; a local data file's path is compared without
the checkout it lives in (its sha256 says what it held). Columns only one store has are named, not compared.

    python scripts/same_results.py RESULTS_A RESULTS_B CHECKOUT_A CHECKOUT_B

Used to check that a refactor left the demo's results unchanged (issue 17): the same sweep run from a checkout of
each commit, into results folders of their own."""

from __future__ import annotations

import sys

import pandas as pd

RUN = ["run_id", "started_at", "finished_at", "log_path", "evalkit_commit", "config_hash", "evalkit_version"]
KEYS = {"scores": ["benchmark", "task", "metric", "filter"], "samples": ["benchmark", "task", "doc_id"]}


def load(results: str, table: str, checkout: str) -> pd.DataFrame:
    df = pd.read_parquet(f"{results}/{table}").drop(columns=RUN, errors="ignore")
    if "metrics" in df:
        df["metrics"] = df["metrics"].astype(str)
    if "data_sources" in df:
        df["data_sources"] = df["data_sources"].str.replace(checkout, "<checkout>", regex=False)
    return df.sort_values(KEYS[table]).reset_index(drop=True)


def main(a: str, b: str, checkout_a: str, checkout_b: str) -> int:
    differ = 0
    for table, keys in KEYS.items():
        x, y = load(a, table, checkout_a), load(b, table, checkout_b)
        only_a, only_b = sorted(set(x.columns) - set(y.columns)), sorted(set(y.columns) - set(x.columns))
        print(f"{table}: {len(x)} vs {len(y)} rows; columns only in A: {only_a}, only in B: {only_b}")
        if len(x) != len(y):
            differ += 1
            continue
        shared = [c for c in x.columns if c in y.columns]
        for c in shared:
            bad = x[c].ne(y[c]) & ~(x[c].isna() & y[c].isna())
            if bad.any():
                differ += 1
                rows = x.loc[bad, keys].assign(a=x.loc[bad, c], b=y.loc[bad, c])
                print(f"  {c}: {int(bad.sum())} rows differ, e.g.\n{rows.head(8).to_string()}")
        print(f"  {len(shared)} shared columns compared")
    print("same results" if not differ else "DIFFERENT")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
