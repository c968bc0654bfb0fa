"""The lm-eval family (Open LLM Leaderboard v1/v2, RULER) as one benchmark adapter.

settings (typed, OmegaConf-validated) -> command (the `lm-eval run` argv, pure) -> adapter (runs the subprocess)
-> parse (lm-eval's JSON as records) -> leaderboard (primary metrics, v2 normalisation, benchmark rows).
offline: lm-eval's task index and local-data task overrides. RULER: ruler (task table, checks, overrides),
ruler_data (its source files, and the loader lm-eval calls), ruler_scores (its rows).
"""
