"""Deployment helpers: ``aurora_setup`` (CA, broker certificate, passwords, mosquitto files) and
the container healthchecks (``python -m aurora.setup.healthcheck``)."""
