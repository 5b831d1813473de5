"""OONI's published measurements made readable by blockmon's analysis, across OONI's versions; pure."""
