"""Experiment drivers: datasets, configs, grid searches and the ``xfw`` command line."""
