"""Arena-Hard-Auto v0.1 internals: file formats (`data`), the pairwise judge (`judge`), pure scoring (`bradley_terry`).

The adapter that uses them is `evalkit.benchmarks.arena.adapter.ArenaHard`.
"""
