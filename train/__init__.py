"""``python -m train`` (console script ``tandem-train``): training program of tandem_keras.

Modules: ``flags`` (command-line flags and their checks), ``data`` (datasets and their
checks), ``pipeline`` (``tf.data`` input pipelines), ``distribute`` (strategies), ``run``
(one training run), ``callbacks``, ``export``. See ``train/README.md``.
"""
