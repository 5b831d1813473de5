"""`blockmon run`: the long-running probe service, its scheduler, runner, upkeep and uploads."""
