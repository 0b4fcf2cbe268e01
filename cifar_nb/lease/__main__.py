"""`python -m cifar_nb.lease ...`: what scripts/lease_run.sh calls on the device machine."""
import sys

from . import main

sys.exit(main(sys.argv[1:]))
