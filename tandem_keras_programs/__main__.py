"""``python -m tandem_keras_programs MODULE ARGS``: ``python -m MODULE ARGS`` of an installed program."""
from tandem_keras_programs import main

main()
