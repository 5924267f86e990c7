"""tav-sweep: Tune-A-Video one-shot video tuning as a measured search."""
