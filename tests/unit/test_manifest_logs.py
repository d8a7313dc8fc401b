"""The `log_*` keys (in `[tuisup]` and per service) and `[tuisup] metrics`, said at file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuisup.manifest import ManifestError, parse_manifest
from tuisup.spec import LogFormat, LogOptions


def load(text: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    return parse_manifest(text, tmp_path / "services.toml", "services.toml")


def problems(text: str, tmp_path: Path) -> list[str]:
    with pytest.raises(ManifestError) as info:
        load(text, tmp_path)
    return [str(p) for p in info.value.problems]


def test_services_take_the_log_keys_of_tuisup_and_their_own_over_them(tmp_path: Path) -> None:
    manifest = load(
        """
[tuisup]
log_max_bytes = 1000
log_format = "json"

[services.a]
command = "true"

[services.b]
command = "true"
log_backups = 0
log_format = "raw"
log_timestamps = false
""",
        tmp_path,
    )
    assert manifest.settings.logs == LogOptions(max_bytes=1000, format=LogFormat.JSON)
    assert manifest.services["a"].logs == LogOptions(max_bytes=1000, format=LogFormat.JSON)
    assert manifest.services["b"].logs == LogOptions(
        max_bytes=1000, backups=0, timestamps=False, format=LogFormat.RAW
    )
    assert manifest.settings.metrics is None


def test_the_defaults_rotate_at_10_mib_keeping_5_with_timestamps(tmp_path: Path) -> None:
    manifest = load('[services.a]\ncommand = "true"\n', tmp_path)
    assert manifest.services["a"].logs == LogOptions(
        max_bytes=10 << 20, backups=5, timestamps=True, format=LogFormat.TEXT
    )


def test_wrong_log_keys_are_said_at_their_line_with_the_closest(tmp_path: Path) -> None:
    found = problems(
        """
[tuisup]
log_max_byte = 10
log_backups = -1

[services.a]
command = "true"
log_format = "jsn"
log_timestamp = true
""",
        tmp_path,
    )
    assert found == [
        'services.toml:3:1: tuisup.log_max_byte: unknown key "log_max_byte" '
        '(did you mean "log_max_bytes"?)',
        "services.toml:4:15: tuisup.log_backups: expected an integer >= 0, got -1",
        'services.toml:8:14: services.a.log_format: expected one of "text", "json", "raw", '
        'got "jsn" (did you mean "json"?)',
        'services.toml:9:1: services.a.log_timestamp: unknown key "log_timestamp" '
        '(did you mean "log_timestamps"?)',
    ]


@pytest.mark.parametrize(
    ("written", "address"),
    [
        ("true", ("127.0.0.1", 9464)),
        ("false", None),
        ("9100", ("127.0.0.1", 9100)),
        ('"9100"', ("127.0.0.1", 9100)),
        ('":9100"', ("127.0.0.1", 9100)),
        ('"0.0.0.0:9100"', ("0.0.0.0", 9100)),
        ('"[::1]:9100"', ("::1", 9100)),
    ],
)
def test_metrics_are_served_on_loopback_unless_an_address_is_written(
    tmp_path: Path, written: str, address: tuple[str, int] | None
) -> None:
    manifest = load(f'[tuisup]\nmetrics = {written}\n[services.a]\ncommand = "true"\n', tmp_path)
    assert manifest.settings.metrics == address


def test_a_wrong_metrics_address_is_said(tmp_path: Path) -> None:
    found = problems('[tuisup]\nmetrics = "localhost:http"\n[services.a]\ncommand="x"\n', tmp_path)
    assert found == [
        'services.toml:2:11: tuisup.metrics: expected "HOST:PORT" with a port from 1 to 65535, '
        'got "localhost:http"'
    ]
