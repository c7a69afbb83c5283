"""`python app.py [--host H] [--port P] [--auth USER:PASS]` opens the lowvram-r1 panel (same as `lowvram-r1 ui`)."""

import sys

from lowvram_r1.cli import main

if __name__ == "__main__":
    sys.exit(main(["ui", *sys.argv[1:]]))
