"""`python -m fbstampli`, which tests use so they run the checkout they are in."""

from fbstampli.cli import main

main()
