"""The Optuna driver: search spaces, trials and their overrides."""
