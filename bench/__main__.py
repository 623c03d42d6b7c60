import sys

from bench.run import main

# main() parses its own list so that tests can pass flags straight through.
sys.exit(main(sys.argv[1:]))
