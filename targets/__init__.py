"""Target registry: what to measure, with each target's link to the briefing."""
