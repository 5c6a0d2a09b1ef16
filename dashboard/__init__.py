"""The dashboard: web pages on the API port, each drawn from a documented JSON endpoint.

``views`` computes what each page shows (from the same run model, report and alert tables the
CLI reads), ``app`` routes pages and JSON, ``templates/`` and ``static/`` are the pages; the
charts are plotly.js, served from the installed ``plotly`` package."""
