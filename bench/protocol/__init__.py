"""The tuning protocol: sweeps, successive halving, selection, verdicts, estimates."""
