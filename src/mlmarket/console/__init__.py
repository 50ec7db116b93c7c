"""The web console, served by `mlmarket serve` at /console/: edge.py (the browser's side of the
wire), sessions.py (signed cookies and CSRF), pages.py (each page, through the API's own
operations), templates/ and static/."""
