"""Studies: arms x seeds of ordinary training runs, compared with honest intervals in a report."""
