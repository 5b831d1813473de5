"""`python -m lab`: the same as `blockmon lab`, for tests that start the lab as a subprocess."""

from lab.cli import lab

lab(prog_name="python -m lab")
