"""Experiment drivers around the three engines: data, grid searches, parity, checks, CLI.

Rooms (each a module or package of one job):

* :mod:`experiments.errors`   the usage error (a leaf)
* :mod:`experiments.runtime`  framework names, lazy framework imports, thread limits
* :mod:`experiments.files`    the one atomic write
* :mod:`experiments.datasets` digits, MNIST from local files, synthetic data
* :mod:`experiments.transfer` Keras <-> torch weights, through the scratch layout
* :mod:`experiments.grid`     eta x lambda grid runs: config, cells, executors, store, tables, figures, report
* :mod:`experiments.parity`   the parity matrix of the scratch engine against Keras and torch
* :mod:`experiments.bench`    speed, measured side by side in one run
* :mod:`experiments.cli`      the ``xfw`` command line (nothing below it imports it)
"""
