"""``python -m train`` (console script ``tandem-train``): training program of tandem_keras.

Modules: ``flags`` (command-line flags and their checks), ``config`` (the run's
configuration), ``recipe`` (model, compile, learning-rate schedule), ``run`` (one training
run), ``rundir`` (the run directory), ``backup``, ``distribute`` (strategies),
``callbacks``, ``export``, ``init_from``. The datasets and input pipelines are ``common``'s.
See ``train/README.md``.
"""
