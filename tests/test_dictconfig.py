"""SlaOSHandler built by ``logging.config.dictConfig``: the README, Flask and Django shapes."""

from __future__ import annotations

import logging
import logging.config
from collections.abc import Iterator
from typing import Any

import pytest

from slaos_logging import SlaOSHandler

from .conftest import KEY
from .server import RecordingServer

ORG = "531ccc57c17a4b418236935e96fb8049"


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials come from the environment, as the issue's snippet expects."""
    monkeypatch.setenv("SLAOS_INGESTION_ID", "ingest-id")
    monkeypatch.setenv("SLAOS_INGESTION_KEY", KEY)


@pytest.fixture(autouse=True)
def restore_loggers() -> Iterator[None]:
    """Undo what dictConfig does to every logger, and close the handlers it built."""
    manager = logging.Logger.manager
    saved: dict[str, tuple[int, bool, bool, list[logging.Handler]]] = {}
    for name, item in list(manager.loggerDict.items()):
        if isinstance(item, logging.Logger):
            saved[name] = (item.level, item.propagate, item.disabled, list(item.handlers))
    root = logging.getLogger()
    root_saved = (root.level, list(root.handlers))
    yield
    kept = {h for state in saved.values() for h in state[3]} | set(root_saved[1])
    for name, item in list(manager.loggerDict.items()):
        if not isinstance(item, logging.Logger):
            continue
        level, propagate, disabled, handlers = saved.get(name, (logging.NOTSET, True, False, []))
        for handler in item.handlers[:]:
            item.removeHandler(handler)
            if handler not in kept:
                handler.close()
        for handler in handlers:
            item.addHandler(handler)
        item.setLevel(level)
        item.propagate = propagate
        item.disabled = disabled
    # dictConfig also strips the root logger, pytest's capture handlers included.
    for handler in root.handlers[:]:
        root.removeHandler(handler)
        if handler not in kept:
            handler.close()
    for handler in root_saved[1]:
        root.addHandler(handler)
    root.setLevel(root_saved[0])


def issue_config(url: str) -> dict[str, Any]:
    """The issue's snippet, pointed at the test server."""
    return {
        "version": 1,
        "handlers": {
            "slaos": {
                "class": "slaos_logging.SlaOSHandler",
                "key": "rated_api",
                "events": ["request_finished"],
                "host": url,
            }
        },
        "loggers": {"myapp": {"handlers": ["slaos"], "level": "INFO"}},
    }


def _only_handler(name: str) -> SlaOSHandler:
    handlers = [h for h in logging.getLogger(name).handlers if isinstance(h, SlaOSHandler)]
    assert len(handlers) == 1
    return handlers[0]


def _request_finished(log: logging.Logger) -> None:
    log.info("request_finished", extra={"organization_id": ORG, "took": 0.035, "status_code": 200})


def test_issue_snippet(server: RecordingServer) -> None:
    """The issue's dictConfig ships request_finished and nothing else."""
    logging.config.dictConfig(issue_config(server.url))
    handler = _only_handler("myapp")
    log = logging.getLogger("myapp")
    _request_finished(log)
    log.info("something else", extra={"organization_id": ORG})
    assert handler.flush(5)
    (event,) = server.events()
    assert event["organization_id"] == ORG
    assert event["key"] == "rated_api"
    assert event["values"] == {"took": 0.035, "status_code": 200}
    assert server.requests[0].path == f"/v1/ingest/ingest-id/{KEY}"
    assert handler.stats()["skipped"] == 1


class OnlyOrg(logging.Filter):
    """Passes records of one organization only."""

    def __init__(self, org: str) -> None:
        super().__init__()
        self.org = org

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "organization_id", None) == self.org


def test_handler_level_and_filters(server: RecordingServer) -> None:
    """A level and filters on the handler entry are honoured."""
    config = issue_config(server.url)
    config["filters"] = {"acme_only": {"()": OnlyOrg, "org": "acme"}}
    config["handlers"]["slaos"].update({"level": "INFO", "filters": ["acme_only"]})
    config["loggers"]["myapp"]["level"] = "DEBUG"
    logging.config.dictConfig(config)
    handler = _only_handler("myapp")
    assert handler.level == logging.INFO
    assert len(handler.filters) == 1
    log = logging.getLogger("myapp")
    log.debug("request_finished", extra={"organization_id": "acme", "status_code": 201})
    log.info("request_finished", extra={"organization_id": "other", "status_code": 202})
    log.info("request_finished", extra={"organization_id": "acme", "status_code": 200})
    assert handler.flush(5)
    assert [(e["organization_id"], e["values"]) for e in server.events()] == [
        ("acme", {"status_code": 200})
    ]


def test_flask_style_root_config(server: RecordingServer) -> None:
    """Flask's documented dictConfig (root section, default formatter) with the handler added."""
    logging.config.dictConfig(
        {
            "version": 1,
            "formatters": {
                "default": {"format": "[%(asctime)s] %(levelname)s in %(module)s: %(message)s"}
            },
            "handlers": {
                "wsgi": {
                    "class": "logging.StreamHandler",
                    "stream": "ext://flask.logging.wsgi_errors_stream",
                    "formatter": "default",
                },
                "slaos": {
                    "class": "slaos_logging.SlaOSHandler",
                    "key": "rated_api",
                    "events": ["request_finished"],
                    "host": server.url,
                },
            },
            "root": {"level": "INFO", "handlers": ["wsgi", "slaos"]},
        }
    )
    handler = _only_handler("")
    _request_finished(logging.getLogger("myapp.views"))
    assert handler.flush(5)
    (event,) = server.events()
    assert event["organization_id"] == ORG
    assert event["values"] == {"took": 0.035, "status_code": 200}


def test_django_logging_setting(server: RecordingServer) -> None:
    """A Django LOGGING dict applied the way Django applies it (after its DEFAULT_LOGGING)."""
    from django.conf import settings
    from django.utils.log import configure_logging

    # Django's DEFAULT_LOGGING builds an AdminEmailHandler, which reads settings; another
    # test module may already have configured them (only once per process is allowed).
    if not settings.configured:
        settings.configure(DEBUG=False)
    logging_setting = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"simple": {"format": "{levelname} {message}", "style": "{"}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "simple"},
            "slaos": {
                "class": "slaos_logging.SlaOSHandler",
                "key": "rated_api",
                "events": ["request_finished"],
                "host": server.url,
            },
        },
        "root": {"handlers": ["console"], "level": "WARNING"},
        "loggers": {"myapp": {"handlers": ["slaos"], "level": "INFO", "propagate": False}},
    }
    configure_logging("logging.config.dictConfig", logging_setting)
    handler = _only_handler("myapp")
    _request_finished(logging.getLogger("myapp.api"))
    assert handler.flush(5)
    (event,) = server.events()
    assert event["organization_id"] == ORG
    assert event["key"] == "rated_api"


def test_bad_argument_names_setting(server: RecordingServer) -> None:
    """dictConfig with batch_size=0 raises ValueError, and the error chain names batch_size."""
    config = issue_config(server.url)
    config["handlers"]["slaos"]["batch_size"] = 0
    with pytest.raises(ValueError) as excinfo:
        logging.config.dictConfig(config)
    # dictConfig wraps the handler's error ("Unable to configure handler 'slaos'") and
    # chains the original: the name must be in one of them.
    texts = f"{excinfo.value} | {excinfo.value.__cause__}"
    assert "batch_size" in texts
    assert KEY not in texts


def test_missing_credentials_name_env_var(
    server: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one credential missing, dictConfig's error names its environment variable."""
    monkeypatch.delenv("SLAOS_INGESTION_KEY")
    with pytest.raises(ValueError) as excinfo:
        logging.config.dictConfig(issue_config(server.url))
    assert "SLAOS_INGESTION_KEY" in f"{excinfo.value} | {excinfo.value.__cause__}"
    monkeypatch.setenv("SLAOS_INGESTION_KEY", KEY)
    monkeypatch.delenv("SLAOS_INGESTION_ID")
    with pytest.raises(ValueError) as excinfo:
        logging.config.dictConfig(issue_config(server.url))
    assert "SLAOS_INGESTION_ID" in f"{excinfo.value} | {excinfo.value.__cause__}"
