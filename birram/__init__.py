"""birram: continual learning with brain-inspired replay, built around an RRAM device simulator."""

__version__ = "0.1.0"
