"""Runnable examples; `conveyor dev` serves examples.reports:app by default."""
