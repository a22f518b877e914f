"""The agent's and admin's pages (htmx over Django templates): thin views that parse the request, call one
service or selector and render. Nothing outside this package and `triage.urls` imports it."""
