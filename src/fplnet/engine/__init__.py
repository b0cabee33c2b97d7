"""Training, evaluation, inference, export and benchmarking. Model code never imports from here."""
