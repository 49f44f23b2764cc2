"""Measurements besides training: the ReLU'(0) bifurcation and the activation cost benchmark."""
