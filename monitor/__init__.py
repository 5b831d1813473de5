"""Application shell: CLI, settings, store, scheduler, state machine, helper, collector, alerts."""
