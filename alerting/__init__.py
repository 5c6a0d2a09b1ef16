"""Alerting: rules over the stored runs, fire/repeat/resolve state, messages and notifiers."""
