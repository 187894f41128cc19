"""``run --api-token-file``: the token file is read strictly, its errors name the file and never its content,
and its token replaces the configuration file's (so a non-loopback bind is allowed with it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.config.loader import ConfigError, load_config, load_sim_default, parse_config, read_token_file

from .config_helpers import SOURCE, base, put, to_toml

TOKEN = "k3x9-Qp7v-2mWz-8rTa-FILE"


def _problem(path: Path) -> str:
    """The one problem reading ``path`` as a token file gives."""
    with pytest.raises(ConfigError) as caught:
        read_token_file(path)
    (line,) = caught.value.problems
    return line


def test_the_token_is_the_file_content_stripped(tmp_path: Path) -> None:
    path = tmp_path / "api-token"
    path.write_text(f"  {TOKEN}\n\n", encoding="utf-8")
    assert read_token_file(path) == TOKEN
    path.write_bytes(TOKEN.encode() + b"\r\n")
    assert read_token_file(str(path)) == TOKEN


@pytest.mark.parametrize(("content", "wording"), [
    (b"", "the API token file is empty; write a token of at least 16 random characters into it"),
    (b" \n\t\n", "the API token file is empty; write a token of at least 16 random characters into it"),
    (b"secret-but-short\x20x", "API access token: only printable ASCII characters, no spaces"),
    (b"only-15-chars-x\n", "API access token: too short: 15 characters, at least 16 needed"),
    (b"x" * 513, "API access token: too long: 513 characters, at most 512"),
    ("geheimes-schlüssel-wort".encode(), "API access token: only printable ASCII characters, no spaces"),
    (b"first-line-token-1234\nsecond-line-token-5678\n", "API access token: only printable ASCII characters, "
                                                          "no spaces"),
    (b"\xff\xfesecret-token-1234567", "cannot read the API token file: not UTF-8 text (byte 0)"),
])
def test_a_bad_token_file_is_one_line_naming_the_file_never_the_token(
    tmp_path: Path, content: bytes, wording: str
) -> None:
    path = tmp_path / "api-token"
    path.write_bytes(content)
    line = _problem(path)
    assert line == f"{path}: {wording}"
    secret = content.decode("utf-8", "replace").strip()
    if secret:
        assert secret not in line and secret[:8] not in line


def test_a_missing_or_unreadable_token_file_is_named(tmp_path: Path) -> None:
    assert _problem(tmp_path / "nope") == f"{tmp_path / 'nope'}: cannot read the API token file: no such file"
    assert _problem(tmp_path) == f"{tmp_path}: cannot read the API token file: it is a directory"


def test_the_token_replaces_the_files_and_allows_a_non_loopback_bind(tmp_path: Path) -> None:
    open_bind = put(base(), "api.bind", "0.0.0.0:8080")
    with pytest.raises(ConfigError, match=r"api\.access_token: required .*run --api-token-file"):
        parse_config(to_toml(open_bind), source=SOURCE)
    assert parse_config(to_toml(open_bind), source=SOURCE, access_token=TOKEN).api.access_token == TOKEN
    with_token = put(base(), "api.access_token", "the-files-own-token-0001")
    (tmp_path / "pi.toml").write_text(to_toml(with_token), encoding="utf-8")
    assert load_config(tmp_path / "pi.toml").api.access_token == "the-files-own-token-0001"
    assert load_config(tmp_path / "pi.toml", access_token=TOKEN).api.access_token == TOKEN
    assert load_sim_default().api.access_token is None
    assert load_sim_default(access_token=TOKEN).api.access_token == TOKEN
