import sys

from oracle.abi import main

raise SystemExit(main(sys.argv[1:]))
