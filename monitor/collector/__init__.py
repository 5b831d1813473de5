"""The central collector: probes register, check in and upload measurements over /api/v1/."""
