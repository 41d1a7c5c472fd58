"""`python -m tests.crashing_owsd ARGS`: `owsd ARGS` in which IIN fits at CRASHING_LR crash (tests.helpers)."""

from owsd.cli import main
from tests.helpers import crashing_fits

if __name__ == "__main__":
    with crashing_fits():
        main()  # the process's own command line: owsd's signal handlers, as `owsd` installs them
