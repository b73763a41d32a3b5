"""`synthaug serve`: a web page and JSON API over trained run folders (generate, classify, reports).

Layout: config (ServeConfig), models (loaded once), batching (micro-batches of generate requests),
limits (body size, time, admission, image checks), reports (runs found by name), app (the routes), static/.
"""

from synthaug.serve.config import ServeConfig

__all__ = ["ServeConfig", "create_app"]


def create_app(*args, **kwargs):  # imported lazily: FastAPI is the optional `serve` extra
    from synthaug.serve.app import create_app as _create_app

    return _create_app(*args, **kwargs)
