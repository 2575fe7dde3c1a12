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
