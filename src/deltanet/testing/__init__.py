"""Test helpers that ship with deltanet: :mod:`deltanet.testing.guard`, a NumPy namespace that refuses what CuPy refuses."""
