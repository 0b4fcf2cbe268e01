"""`python -m cifar_nb.engine.lease ...`: what scripts/lease_run.sh calls on the device machine."""
import sys

from cifar_nb.engine.lease import main

sys.exit(main(sys.argv[1:]))
