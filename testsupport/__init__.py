"""What the tests and benchmarks share, free of pytest: the offline plans, the real servers
(PostgreSQL, nginx, the end-to-end applications, Chromium) and the test PKI.

A missing real tool raises `MissingToolError`; tests/conftest.py turns it into a skip on a laptop and
a failure in CI, and a benchmark into a line that says what to install.
"""
