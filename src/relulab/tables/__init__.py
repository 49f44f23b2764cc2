"""Tables from a study's runs: statistics, summary, death dynamics, convergence, twins."""
