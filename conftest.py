"""Root conftest: puts the project root on sys.path so `tandem_keras`, `models`, `train`
and `eval` import from a plain checkout."""
