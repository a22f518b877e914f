"""gunicorn's own log (its error log and the access log), kept as free of customers' data as Django's.

gunicorn.conf.py names this class, so every gunicorn started from the checkout uses it (`./run`, the
benchmarks, the tests). Access lines leave out query strings (search terms, filters: what agents typed) and
the SendGrid URL secret, and both of gunicorn's loggers get the same PII filter as settings.LOGGING.
"""

from __future__ import annotations

import re
from typing import Any

from gunicorn import glogging

from triage.log_filters import RedactPii

_SENDGRID_SECRET = re.compile(r"(/inbound/sendgrid/)[^/?\s]+")


def _path_only(value: str) -> str:
    return _SENDGRID_SECRET.sub(r"\1[SECRET]", value.split("?", 1)[0])


class RedactingLogger(glogging.Logger):  # type: ignore[misc]
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            if not any(isinstance(f, RedactPii) for f in log.filters):
                log.addFilter(RedactPii())

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        atoms["r"] = (
            f"{environ['REQUEST_METHOD']} {_path_only(environ.get('RAW_URI', ''))} "
            f"{environ['SERVER_PROTOCOL']}"
        )
        atoms["U"] = _path_only(environ.get("PATH_INFO", ""))
        atoms["q"] = ""
        atoms["f"] = _path_only(atoms.get("f", "-"))
        return atoms
