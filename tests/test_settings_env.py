import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list, env_path


def test_it_parses_booleans(monkeypatch):
    monkeypatch.setenv("FLAG", "yes")
    assert env_bool("FLAG", False) is True
    monkeypatch.setenv("FLAG", "0")
    assert env_bool("FLAG", True) is False


def test_it_names_the_variable_when_a_boolean_is_wrong(monkeypatch):
    monkeypatch.setenv("DEBUG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="DEBUG='maybe' is not a boolean"):
        env_bool("DEBUG", True)


def test_it_names_the_variable_when_an_integer_is_wrong(monkeypatch):
    monkeypatch.setenv("WORKERS", "two")
    with pytest.raises(ImproperlyConfigured, match="WORKERS='two' is not an integer"):
        env_int("WORKERS", 1)


def test_it_splits_lists_and_drops_blanks(monkeypatch):
    monkeypatch.setenv("ALLOWED_HOSTS", "a.example, b.example,,")
    assert env_list("ALLOWED_HOSTS", []) == ["a.example", "b.example"]


def test_it_refuses_a_relative_model_root(monkeypatch, tmp_path):
    monkeypatch.setenv("MODEL_ROOT", "models")
    with pytest.raises(ImproperlyConfigured, match="MODEL_ROOT='models' must be an absolute path"):
        env_path("MODEL_ROOT", tmp_path)


def test_it_falls_back_to_defaults_when_unset(monkeypatch, tmp_path):
    for name in ("X_BOOL", "X_INT", "X_LIST", "X_PATH"):
        monkeypatch.delenv(name, raising=False)
    assert env_bool("X_BOOL", True) is True
    assert env_int("X_INT", 7) == 7
    assert env_list("X_LIST", ["a"]) == ["a"]
    assert env_path("X_PATH", tmp_path) == tmp_path
