"""Judging: statistics, budgets, the baseline comparison, the YAML baseline store and the one
verdict a measurement gets. Imports the analysis layer and the stdlib (and PyYAML)."""
