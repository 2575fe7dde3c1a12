import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bulwark.settings import ConfigError, load_settings


def test_defaults_are_offline_and_embedded(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.model == "offline"
    assert settings.resolved_checkpointer_url == "sqlite:///.bulwark/checkpoints.db"


def test_reads_env_and_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("BULWARK_MODEL=openai:gpt-4o-mini\nBULWARK_PORT=9000\n")
    monkeypatch.setenv("BULWARK_PORT", "9100")  # the environment wins over .env
    settings = load_settings()
    assert (settings.model, settings.port) == ("openai:gpt-4o-mini", 9100)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ("BULWARK_MODEL=gpt4", "BULWARK_MODEL: unknown model spec 'gpt4'"),
        ("BULWARK_PORT=lots", "BULWARK_PORT: Input should be a valid integer"),
        ("BULWARK_CHECKPOINTER_URL=postgres://x", "BULWARK_CHECKPOINTER_URL: unsupported"),
        ("BULWARK_SERVER_JOBS=0", "BULWARK_SERVER_JOBS: Input should be greater than or equal to 1"),
    ],
)
def test_bad_values_name_the_variable(tmp_path: Path, env: str, message: str) -> None:
    (tmp_path / ".env").write_text(env + "\n")
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_unwritable_data_dir_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="BULWARK_DATA_DIR"):
        load_settings(data_dir=blocker / "sub").ensure_data_dir()


def test_data_dir_check_is_safe_when_processes_start_together(tmp_path: Path) -> None:
    # Each worker stands for a process starting up (the server's workers, a CLI next to
    # it): with one shared probe file, one would delete another's probe mid-check.
    settings = load_settings(data_dir=tmp_path / "data")
    workers, rounds = 8, 200
    start = threading.Barrier(workers)

    def check() -> None:
        start.wait()
        for _ in range(rounds):
            settings.ensure_data_dir()

    with ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(check) for _ in range(workers)]:
            future.result()  # a ConfigError from any worker fails the test
    assert list((tmp_path / "data").iterdir()) == [], "no probe is left behind"
