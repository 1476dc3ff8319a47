"""``python -m eval``: accuracy, SynOps and spiking activity of an exported tandem SNN."""
