"""Paper-ready reports from the tidy tables: tables (Markdown, LaTeX booktabs, CSV) and figures.

`tables` computes and renders tables, `figures` draws one file per (task, model), `index` writes
the index page and orchestrates; `metadata` holds units and definitions, `data` reads the tables.
All statistics come from `bench.stats`.
"""

from bench.report.index import write_report

__all__ = ["write_report"]
