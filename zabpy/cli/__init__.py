"""Command-line entry points: `zabpy server`, `shell`, `status`, `purge`
(dispatched by ``zabpy.cli.main``; not imported here so that
``python -m zabpy.cli.main`` runs cleanly)."""

__all__: list[str] = []
