"""One module per `blockmon` subcommand; each is imported only when its command runs."""
