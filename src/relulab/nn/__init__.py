"""The networks: zero-gradient activations and their compiled operators, MLPs, conv nets, probes."""
