"""Reading saved records into tables, statistics, figures, pages and exports; never training code."""
