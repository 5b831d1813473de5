"""Which migration sets a probe's database holds: the store's tables and the alerts' tables."""

from __future__ import annotations

from monitor.alerts.schema import ALERT_MIGRATIONS
from monitor.store.migrations import STORE_MIGRATIONS, MigrationSet

# The store cannot name these itself (alerts sit above it), so whoever opens a database says
# what it holds: `open_store(url, migration_sets=PROBE_DATABASE)`. A collector's database holds
# these and its own (monitor.collector.schema.COLLECTOR_DATABASE); keeping that list in the
# collector spares `blockmon run`'s service an import of the collector.
PROBE_DATABASE: tuple[MigrationSet, ...] = (STORE_MIGRATIONS, ALERT_MIGRATIONS)
