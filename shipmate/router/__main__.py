"""`python -m shipmate.router`: the router daemon (see daemon.py)."""

from shipmate.router.daemon import main

main()
