"""What the programs (``train``, ``eval``, ``bench``) share: the datasets, their input
pipelines, and how a program speaks to its user.

Modules: ``datasets`` (TFDS ``cifar10`` / ``imagenet2012``, image folders and scikit-learn's
digits as a :class:`~common.datasets.Source` of splits, with the fixed train/validation
partition), ``folders`` (an image folder's classes, files, identity and unreadable images),
``tfds_prepare`` (preparing a TFDS dataset; a missing manual download or an unwritable data
directory in one line), ``pipeline`` (``tf.data`` batches: augmentation, per-epoch
shuffling), ``console`` (one-line usage errors, TensorFlow's start-up lines held back).
"""
