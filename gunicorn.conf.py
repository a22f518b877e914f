# Read by gunicorn from the working directory (`./run`, bench/intake.py).
import os

# Its log lines carry no query strings, secrets in URLs or customers' contact details (see
# triage/gunicorn_logging.py).
logger_class = "triage.gunicorn_logging.RedactingLogger"

workers = int(os.environ.get("WEB_CONCURRENCY") or 2)
threads = int(os.environ.get("TIERDESK_WEB_THREADS") or 4)
