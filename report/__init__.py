"""The agent health report: per-agent health, failure signals, eval cases, and its formats."""
