import sys

from gpushares.abi import main

raise SystemExit(main(sys.argv[1:]))
