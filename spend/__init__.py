"""Money: monthly budgets (the config's ``budgets:`` section) and where each stands, and the
month-end spend forecast. Below the report, the alert rules and the dashboard, which all read it."""
