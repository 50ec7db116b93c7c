"""`mlmarket check IMAGE`: a seller's pre-flight report on the marketplace's rules, from the
image deployed and called for real (serving.py), as a table, JSON and JUnit (reports.py)."""
