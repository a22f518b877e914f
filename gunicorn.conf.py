# Read by gunicorn from the working directory: its log lines carry no query strings, secrets in URLs or
# customers' contact details (see triage/gunicorn_logging.py).
logger_class = "triage.gunicorn_logging.RedactingLogger"
