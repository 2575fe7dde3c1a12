"""Log redaction: no raw PII or secret in any rendered log record (observability/logs.py)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

import bulwark.observability.logs as logs
from bulwark.guardrails.checks import RailPolicy
from bulwark.observability.logs import RedactedException, install_log_redaction, redact_text

EMAIL = "alice.smith@example.com"
CARD = "4111 1111 1111 1111"
PHONE = "+1 415 555 0123"
SECRET = "sk-abcdefghijklmnopqrstuvwx"
RAW = (EMAIL, CARD, PHONE, SECRET)
PLACEHOLDERS = ("<EMAIL>", "<CREDIT_CARD>", "<PHONE_NUMBER>", "<SECRET>")

# The server's chain also renders exceptions with format_exc_info before a ConsoleRenderer.
pytestmark = pytest.mark.filterwarnings("ignore:Remove `format_exc_info`:UserWarning")


@pytest.fixture(autouse=True)
def _restore_factory() -> Iterator[None]:
    """Every test starts and ends with the record factory it found."""
    original = logging.getLogRecordFactory()
    yield
    logging.setLogRecordFactory(original)


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """What stdlib loggers under ``bulwark.test`` and ``httpx`` print, with a plain formatter."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    loggers = [logging.getLogger("bulwark.test"), logging.getLogger("httpx")]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield out
    for logger in loggers:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


def assert_clean(text: str, *placeholders: str) -> None:
    for raw in RAW:
        assert raw not in text
    for placeholder in placeholders:
        assert placeholder in text


def test_redact_text() -> None:
    text = f"mail {EMAIL}, card {CARD}, call {PHONE}, key {SECRET}"
    assert redact_text(text, RailPolicy()) == "mail <EMAIL>, card <CREDIT_CARD>, call <PHONE_NUMBER>, key <SECRET>"
    assert redact_text("", RailPolicy()) == ""


@pytest.mark.parametrize(
    "value", ["0b7c6a1e-3f0d-4c55-9a51-6a3f1f0d2b8e", "2026-12-01T09:40:47.167531+00:00", "748", "0.25"]
)
def test_ids_timestamps_and_short_numbers_are_left_as_they_are(value: str) -> None:
    assert redact_text(value, RailPolicy()) == value


@pytest.mark.parametrize(
    ("value", "placeholder"),
    [("4111111111111111", "<CREDIT_CARD>"), ("+1 415 555 0132", "<PHONE_NUMBER>"), ("2026-12-01 ada@example.com", "<EMAIL>")],
)
def test_values_that_only_look_inert_are_still_redacted(value: str, placeholder: str) -> None:
    assert placeholder in redact_text(value, RailPolicy())


def test_exception_names_are_not_people() -> None:
    """Traceback lines read like a dialogue ("KeyError: ..."), but class names stay."""
    text = "KeyError: 'x'\n\nRuntimeError: boom\nhttpx.ReadTimeout: slow\nJosh Smith: my card is due"
    redacted = redact_text(text, RailPolicy())
    assert redacted.startswith("KeyError: 'x'\n\nRuntimeError: boom\nhttpx.ReadTimeout: slow\n")
    assert "Josh" not in redacted and "<PERSON>" in redacted


def test_percent_args_and_fstrings_are_redacted(stream: io.StringIO) -> None:
    install_log_redaction(RailPolicy())
    log = logging.getLogger("bulwark.test.app")
    log.info("user %s paid with %s", EMAIL, CARD)
    log.warning(f"call {PHONE} with key {SECRET}")
    log.info("user %(email)s", {"email": EMAIL})
    assert_clean(stream.getvalue(), *PLACEHOLDERS)
    assert "user <EMAIL> paid with <CREDIT_CARD>" in stream.getvalue()


def test_library_records_are_redacted(stream: io.StringIO) -> None:
    install_log_redaction(RailPolicy())
    logging.getLogger("httpx").info('HTTP Request: GET https://api.test/?key=%s "HTTP/1.1 200 OK"', SECRET)
    assert stream.getvalue() == 'httpx INFO HTTP Request: GET https://api.test/?key=<SECRET> "HTTP/1.1 200 OK"\n'


def test_record_fields(stream: io.StringIO) -> None:
    install_log_redaction(RailPolicy())
    record = logging.getLogger("bulwark.test").makeRecord(
        "bulwark.test", logging.INFO, __file__, 1, "to %s", (EMAIL,), None, sinfo=f"stack {SECRET}"
    )
    assert (record.msg, record.args, record.stack_info) == ("to <EMAIL>", (), "stack <SECRET>")


def test_non_string_messages_and_args(stream: io.StringIO) -> None:
    install_log_redaction(RailPolicy())
    log = logging.getLogger("bulwark.test")
    log.info("%s %r %d %s", None, b"bytes", 42, {"to": EMAIL})
    log.info(ValueError(f"bad {CARD}"))
    log.info(12345)
    assert_clean(stream.getvalue(), "<EMAIL>", "<CREDIT_CARD>")
    assert "None b'bytes' 42 {'to': '<EMAIL>'}" in stream.getvalue()
    assert "bulwark.test INFO 12345\n" in stream.getvalue()


def test_unformattable_message_is_left_alone_and_marked() -> None:
    install_log_redaction(RailPolicy())
    record = logging.getLogRecordFactory()(
        "bulwark.test", logging.INFO, __file__, 1, "%d items", ("many",), None
    )
    assert (record.msg, record.args) == ("%d items", ("many",))
    assert record.redaction_skipped == "TypeError"


def test_exceptions_are_redacted(stream: io.StringIO) -> None:
    install_log_redaction(RailPolicy())
    log = logging.getLogger("bulwark.test")
    try:
        try:
            raise KeyError(f"no account for {EMAIL}")
        except KeyError as error:
            raise RuntimeError(f"charge of {CARD} failed, key {SECRET}") from error
    except RuntimeError:
        log.exception("payment for %s failed", PHONE)
    out = stream.getvalue()
    assert_clean(out, *PLACEHOLDERS)
    assert "Traceback (most recent call last)" in out
    assert "RuntimeError: charge of <CREDIT_CARD> failed, key <SECRET>" in out
    assert "The above exception was the direct cause" in out


def test_exc_info_no_longer_holds_the_original_exception() -> None:
    install_log_redaction(RailPolicy())
    try:
        raise ValueError(f"bad {EMAIL}")
    except ValueError as error:
        record = logging.getLogger("bulwark.test").makeRecord(
            "bulwark.test", logging.ERROR, __file__, 1, "failed", (), (ValueError, error, error.__traceback__)
        )
    assert record.exc_info is not None
    kind, value, traceback = record.exc_info
    assert kind is RedactedException and traceback is None
    assert str(value) == record.exc_text
    assert "ValueError: bad <EMAIL>" in record.exc_text and EMAIL not in record.exc_text


def _langgraph_like_handler(renderer: structlog.typing.Processor) -> tuple[logging.Handler, list]:
    """A handler formatted like ``langgraph_api.logging.Formatter``, and its shared chain."""
    shared: list = [
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        structlog.processors.UnicodeDecoder(),
    ]
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    return handler, shared


@pytest.fixture(params=["json", "console"])
def server_logging(request: pytest.FixtureRequest) -> Iterator[tuple[logging.Logger, io.StringIO, list]]:
    """A ``bulwark.test.server`` logger whose handler renders like the LangGraph server's."""
    renderer = (
        structlog.processors.JSONRenderer()
        if request.param == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    handler, shared = _langgraph_like_handler(renderer)
    logger = logging.getLogger("bulwark.test.server")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, handler.stream, shared  # type: ignore[attr-defined]
    logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)
    logger.propagate = True


def test_structlog_events_are_redacted(server_logging: tuple[logging.Logger, io.StringIO, list]) -> None:
    install_log_redaction(RailPolicy())
    logger, out, shared = server_logging
    log = structlog.wrap_logger(
        logger,
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    log.info(f"run for {EMAIL}", card=CARD, nested={"calls": [PHONE, 7], "ok": True}, attempt=1)
    try:
        raise ValueError(f"upstream rejected {SECRET}")
    except ValueError:
        log.exception("run failed", user=EMAIL)
    assert_clean(out.getvalue(), *PLACEHOLDERS)
    assert "ValueError: upstream rejected <SECRET>" in out.getvalue()


def test_structlog_event_stays_a_dict(server_logging: tuple[logging.Logger, io.StringIO, list]) -> None:
    install_log_redaction(RailPolicy())
    logger, out, shared = server_logging
    seen: list[logging.LogRecord] = []
    logger.addFilter(lambda record: seen.append(record) or True)
    log = structlog.wrap_logger(
        logger,
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    log.info("paid", card=CARD, items=(1, EMAIL), tags={"x"}, count=3, flag=None)
    event = seen[0].msg
    assert isinstance(event, dict)
    assert event["card"] == "<CREDIT_CARD>" and event["items"] == (1, "<EMAIL>")
    assert (event["tags"], event["count"], event["flag"]) == ({"x"}, 3, None)
    assert event["event"] == "paid" and event["level"] == "info"


def test_stdlib_records_through_the_server_formatter(
    server_logging: tuple[logging.Logger, io.StringIO, list],
) -> None:
    """structlog re-renders ``exc_info`` for records from stdlib loggers: it must be clean too."""
    install_log_redaction(RailPolicy())
    logger, out, _ = server_logging
    try:
        raise ConnectionError(f"refused for {EMAIL}")
    except ConnectionError:
        logger.exception("request to %s failed", PHONE)
    rendered = out.getvalue()
    assert_clean(rendered, "<EMAIL>", "<PHONE_NUMBER>")
    assert "ConnectionError: refused for <EMAIL>" in rendered
    if rendered.startswith("{"):
        assert json.loads(rendered)["event"] == "request to <PHONE_NUMBER> failed"


def test_install_is_idempotent(stream: io.StringIO) -> None:
    original = logging.getLogRecordFactory()
    install_log_redaction(RailPolicy())
    factory = logging.getLogRecordFactory()
    install_log_redaction(RailPolicy(pii_entities=()))
    assert logging.getLogRecordFactory() is factory
    assert factory.wrapped is original  # type: ignore[attr-defined]
    logging.getLogger("bulwark.test").info("to %s with %s", EMAIL, SECRET)
    assert "to alice.smith@example.com with <SECRET>" in stream.getvalue()  # the second policy


def test_reinstall_over_another_factory_redacts_once(
    monkeypatch: pytest.MonkeyPatch, stream: io.StringIO
) -> None:
    install_log_redaction(RailPolicy())
    ours = logging.getLogRecordFactory()
    logging.setLogRecordFactory(lambda *a, **kw: ours(*a, **kw))  # another library wraps ours
    install_log_redaction(RailPolicy())
    calls: list[str] = []
    real = logs.redact_text
    monkeypatch.setattr(logs, "redact_text", lambda text, policy: calls.append(text) or real(text, policy))
    logging.getLogger("bulwark.test").info("to %s", EMAIL)
    assert calls == [f"to {EMAIL}"]


def test_previous_factory_still_runs() -> None:
    original = logging.getLogRecordFactory()

    def tagging(*args: object, **kwargs: object) -> logging.LogRecord:
        record = original(*args, **kwargs)
        record.tagged = True
        return record

    logging.setLogRecordFactory(tagging)
    install_log_redaction(RailPolicy())
    record = logging.getLogger("bulwark.test").makeRecord("t", logging.INFO, "f", 1, EMAIL, (), None)
    assert record.tagged and record.msg == "<EMAIL>"  # type: ignore[attr-defined]


def test_detector_failure_withholds_the_record(monkeypatch: pytest.MonkeyPatch, stream: io.StringIO) -> None:
    install_log_redaction(RailPolicy())

    def broken(text: str, policy: RailPolicy) -> str:
        raise RuntimeError(text)

    monkeypatch.setattr(logs, "redact_text", broken)
    logging.getLogger("bulwark.test").info("to %s", EMAIL)
    assert stream.getvalue() == "bulwark.test INFO <log record withheld: redaction failed with RuntimeError>\n"
